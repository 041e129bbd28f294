"""Training that watches itself: the quality curve, the best checkpoint and the collapse
watchdog.

Every --eval_every_secs the chief generates windows with the moving-average generator and
compares them with a fixed, seeded sample of real windows drawn at start-up (metrics.py's
metrics), each reading put against two references computed once: other real windows (the
floor) and white noise at the real loudness (the ceiling). The checkpoint with the lowest
Frechet mel distance so far is kept in <stage folder>/best/, apart from the rotation of the
last three. The watchdog declares a collapse when, for --collapse_patience observations in a
row, the raw generator's summary batches fall silent after having been audible, or the
generated audio is stuck at full scale, or the Frechet distance is far above the best.
"""

import numpy as np

import longform
import metrics
import rules
from evaluate import comparison_windows, real_windows
from rules import default_batch_size

# What the quality curve logs besides the metrics' tags (metrics.tags()).
TAGS = {"train.frechet_mel_distance": "Eval/train_frechet_mel_distance"}


class QualityCurve:
    """Evaluations during training against real windows drawn once, at start-up: of the
    training audio, or of the held-out audio with a validation split (validation), when the
    distance to training windows is measured too (train.frechet_mel_distance): a training
    distance that falls while the validation distance rises is overfitting. The memorisation
    check searches the training windows (`whole`: how many there are in all). A conditional
    model's windows are generated for each label in turn, against that label's own (parts),
    and each label gets its own distance too, asked for at `label_strength`
    (longform.label_input; --evaluate --label_strength)."""

    def __init__(self, audio, num_blocks, count, seed, prior, validation=None, labels=(),
                 parts=None, label_strength=1.0):
        self.labels = list(labels)
        # The memorisation check always searches the training audio.
        train_real, train_other, self.training, self.whole = comparison_windows(
            audio, num_blocks, count, seed)
        if self.labels:  # a share of the windows for each label, of its own audio
            each = [real_windows(part, num_blocks, max(1, count // len(labels)), seed)
                    for part in parts]
            self.by_label = [len(real) for real, *_ in each]
            self.real, other = (np.concatenate([e[i] for e in each]) for i in (0, 1))
        elif validation is not None:
            self.real, other, _ = real_windows(validation, num_blocks, count, seed)
        else:
            self.real, other = train_real, train_other
        self.train_real = train_real if validation is not None else None
        self.latents = longform.draw_latents(seed + 2, len(self.real), prior)
        if self.labels:
            self.latents = longform.with_labels(self.latents, len(self.labels), np.repeat(
                np.arange(len(self.labels)), self.by_label), label_strength)
        self.rate, self.seed = audio.sampling_rate, seed
        self.batch = default_batch_size(num_blocks)
        self.references = metrics.reference_metrics(self.real, other, self.rate, seed)

    def measure(self, generator):
        """(metrics of generator's windows, the windows); self.finite says whether they were
        all finite (a diverged generator's are measured with its NaN as 0)."""
        generated = longform.generate_windows(generator, self.latents, self.batch)
        self.finite = bool(np.isfinite(generated).all())
        if not self.finite:
            generated = np.nan_to_num(generated, nan=0.0, posinf=1.0, neginf=-1.0)
        measured = metrics.compute_metrics(self.real, generated, self.rate, self.training,
                                           seed=self.seed)
        if self.labels:
            ends = np.cumsum(self.by_label)[:-1]
            measured.update(metrics.label_metrics(self.labels, np.split(self.real, ends),
                                                  np.split(generated, ends), self.rate))
        if self.train_real is not None:
            comparison = metrics.Comparison(self.train_real, generated, self.rate)
            measured["train.frechet_mel_distance"] = metrics.frechet_mel(comparison)[
                "frechet_mel_distance"]
        return measured, generated

    def line(self, step, measured):
        """The console line of an evaluation."""
        distance = measured["frechet_mel_distance"]
        done = metrics.progress(distance, self.references)
        way = f", {100 * done:.0f} % of the way from noise" if done is not None else ""
        refs = self.references
        return (f"evaluation at step {step}: Frechet mel distance {distance:.4g} (real music "
                f"{refs['real']['frechet_mel_distance']:.4g}, noise "
                f"{refs['noise']['frechet_mel_distance']:.4g}{way}), RMS ratio "
                f"{measured['loudness.rms_ratio']:.3g}, spectral distance "
                f"{measured['spectrum.distance_db']:.3g} dB, NDB/K "
                f"{measured['ndb.ndb_over_k']:.3g}, copies "
                f"{measured['memorisation.fraction_below']:.3g}" + (
                    f", score {score:.4g}" if (score := rules.quality_score(measured))
                    is not None else "") + (
                    f"; to training windows {measured['train.frechet_mel_distance']:.4g}"
                    if "train.frechet_mel_distance" in measured else "") + (
                    "; per label " + ", ".join(
                        f"{name} {measured[f'label.{name}.frechet_mel_distance']:.4g} "
                        f"(RMS ratio {measured[f'label.{name}.rms_ratio']:.3g})"
                        for name in self.labels) if self.labels else ""))


class Watchdog:
    """Counts observations in a row that look collapsed; says why once there are enough.

    Silence is judged on the raw generator (the summaries' batches: the moving average is
    quieter early on, its weights averaging out), and only once the generator has been
    audible (twice the threshold): a generator that starts quiet has not collapsed."""

    def __init__(self, rms_ratio, full_scale, frechet_factor, patience):
        self.rms_ratio, self.full_scale = rms_ratio, full_scale
        self.frechet_factor, self.patience = frechet_factor, patience
        self.strikes = {"evaluation": 0, "summary": 0}
        self.audible = False

    def symptom(self, real_rms, generated_rms, full_scale, distance=None, best=None):
        """What looks collapsed in one observation, or None (generated_rms None: loudness
        not judged)."""
        if generated_rms is not None and real_rms > 0:
            if generated_rms >= 2 * self.rms_ratio * real_rms:
                self.audible = True
            elif self.audible and generated_rms < self.rms_ratio * real_rms:
                return (f"generated RMS {generated_rms:.3g} is below {self.rms_ratio:g} of the "
                        f"real {real_rms:.3g}: the generator fell silent")
        if full_scale > self.full_scale:
            return (f"{100 * full_scale:.0f} % of the generated samples are at full scale: the "
                    f"generator is stuck there")
        if distance is not None and best is not None and distance > self.frechet_factor * best:
            return (f"Frechet mel distance {distance:.4g} is over {self.frechet_factor:g} times "
                    f"the best, {best:.4g}")
        return None

    def observe(self, kind, symptom):
        """One observation of kind "evaluation" or "summary": the collapse it completes, or
        None."""
        self.strikes[kind] = self.strikes[kind] + 1 if symptom else 0
        if symptom and self.strikes[kind] >= self.patience:
            self.strikes = dict.fromkeys(self.strikes, 0)
            return symptom
        return None
