"""The WaveGAN baseline's training iteration (train.py) against a PyTorch WaveGAN at the same
shapes, timed alternately in one process.

    python bench/pytorch_wavegan.py [--batch_size 16] [--use_mixed_precision_training]

Both sides train the report's WaveGAN (§7.4; chrisdonahue/wavegan's shapes): G is a dense
layer 100 -> 16 x 1024 and five transposed convolutions (kernel 25, stride 4) to 16384
samples; D five convolutions with leaky ReLU (0.2) and phase shuffle (radius 2, one shift per
batch and layer) and a dense layer. An iteration is 5 critic updates with the gradient
penalty (weight 10) and 1 generator update, Adam(1e-4, 0.5, 0.9), on batches of noise.
This side is train.py's own iteration (runs.build_run, --conv_forms auto); the PyTorch
side is written here, float32 or bfloat16 autocast. It installs nothing: without PyTorch
(`pip install torch`) it says so and exits 0.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_step import SEED, time_alternately, training_run  # puts the project on the path

from private_apis import import_tensorflow
from rules import (
    BASE_LENGTH,
    KERNEL_SIZE,
    LATENT_DIM,
    STRIDE,
    WAVEGAN_D_FEATURE_MAPS,
    WAVEGAN_G_FEATURE_MAPS,
)
from utils import ArgumentParser, int_in_range, run_cli


def torch_wavegan(torch, batch, bfloat16, rad):
    """A PyTorch WaveGAN iteration, phase shuffle of radius rad: a function that trains one
    iteration on noise."""
    from iteration import N_CRITIC
    from losses import GP_WEIGHT

    nn = torch.nn
    pad = (KERNEL_SIZE - STRIDE + 1) // 2  # 11: "same" lengths, as TensorFlow's padding

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.project = nn.Linear(LATENT_DIM, BASE_LENGTH * WAVEGAN_G_FEATURE_MAPS[0])
            outputs = WAVEGAN_G_FEATURE_MAPS[1:] + (1,)
            self.convs = nn.ModuleList(
                nn.ConvTranspose1d(n_in, n_out, KERNEL_SIZE, STRIDE, pad, output_padding=1)
                for n_in, n_out in zip(WAVEGAN_G_FEATURE_MAPS, outputs))

        def forward(self, z):
            x = torch.relu(self.project(z)).view(-1, WAVEGAN_G_FEATURE_MAPS[0], BASE_LENGTH)
            for i, conv in enumerate(self.convs):
                x = conv(x)
                x = torch.relu(x) if i < len(self.convs) - 1 else torch.tanh(x)
            return x

    class Discriminator(nn.Module):
        def __init__(self):
            super().__init__()
            inputs = (1,) + WAVEGAN_D_FEATURE_MAPS[:-1]
            self.convs = nn.ModuleList(nn.Conv1d(n_in, n_out, KERNEL_SIZE, STRIDE, pad)
                                       for n_in, n_out in zip(inputs, WAVEGAN_D_FEATURE_MAPS))
            self.prediction = nn.Linear(BASE_LENGTH * WAVEGAN_D_FEATURE_MAPS[-1], 1)

        def forward(self, x):
            for i, conv in enumerate(self.convs):
                x = nn.functional.leaky_relu(conv(x), 0.2)
                if i < len(self.convs) - 1:
                    shift = int(torch.randint(-rad, rad + 1, ()))
                    x = nn.functional.pad(x, (rad, rad), mode="reflect")
                    x = x[:, :, rad - shift:rad - shift + x.shape[2] - 2 * rad]
            return self.prediction(x.flatten(1))

    torch.manual_seed(SEED)
    G, D = Generator(), Discriminator()
    g_opt = torch.optim.Adam(G.parameters(), 1e-4, betas=(0.5, 0.9))
    d_opt = torch.optim.Adam(D.parameters(), 1e-4, betas=(0.5, 0.9))
    window = BASE_LENGTH * STRIDE ** len(WAVEGAN_G_FEATURE_MAPS)

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16)

    def iteration():
        for _ in range(N_CRITIC):
            real = torch.rand(batch, 1, window) - 0.5
            z = torch.rand(batch, LATENT_DIM) * 2 - 1
            with autocast():
                with torch.no_grad():
                    fake = G(z).float()
                alpha = torch.rand(batch, 1, 1)
                mixed = (real + alpha * (fake - real)).requires_grad_(True)
                d_mixed = D(mixed).float()
                grad, = torch.autograd.grad(d_mixed.sum(), mixed, create_graph=True)
                gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
                d_loss = D(fake).float().mean() - D(real).float().mean() + GP_WEIGHT * gp
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
        z = torch.rand(batch, LATENT_DIM) * 2 - 1
        with autocast():
            g_loss = -D(G(z)).float().mean()
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        return float(d_loss.detach())

    return iteration


def our_wavegan(batch, mixed):
    """train.py's iteration on noise (its default configuration): a function that trains
    one iteration, the dtype policy, the convolution forms' line and the phase-shuffle
    radius."""
    import_tensorflow()
    import train
    from config import ModelConfig
    from rules import SAMPLING_RATE, WAVEGAN_BLOCKS

    config = train.make_config(ModelConfig(), SAMPLING_RATE, 1)
    run, iterator, policy, _, forms = training_run(WAVEGAN_BLOCKS, batch, mixed,
                                                   recipe=train.RECIPE, config=config)
    return ((lambda: float(run.iteration(iterator)["d_loss"])), policy, forms,
            config["phaseshuffle_rad"])


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch_size", type=int_in_range(1, 4096), default=16)
    parser.add_argument("--use_mixed_precision_training", action="store_true",
                        help="bfloat16 on both sides (this side: as the trainers)")
    parser.add_argument("--iterations", type=int_in_range(1, 1000), default=5,
                        help="timed iterations of each (the median is reported)")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed (pip install torch): nothing to compare with")
        return 0
    torch.set_num_threads(os.cpu_count())
    ours, policy, forms, rad = our_wavegan(args.batch_size, args.use_mixed_precision_training)
    theirs = torch_wavegan(torch, args.batch_size, policy == "mixed_bfloat16", rad)
    calls = {"this project": ours, f"PyTorch {torch.__version__}": theirs}
    for name, call in calls.items():  # warm-up: tracing, oneDNN's first calls
        call(), call()
    median = time_alternately(calls, args.iterations)
    print(f"WaveGAN, batch {args.batch_size}, {policy}; {forms}")
    for name, value in median.items():
        print(f"  {name}: {value:.3f} s per iteration (median of {args.iterations})")
    ours_s, theirs_s = median.values()
    print(f"  this project is {theirs_s / ours_s:.2f}x as fast as PyTorch")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
