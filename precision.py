"""Which number format a run computes in (report §7.6, mixed precision).

float32 by default. With --use_mixed_precision_training: on a GPU the report's float16
compute with float32 variables and a fixed loss scale of 32; on a CPU, where float16
convolutions fall back from oneDNN to Eigen and run about 10x slower than float32, bfloat16,
which has float32's range and needs no loss scale (float32 where the CPU lacks bfloat16).
"""

LOSS_SCALE = 32.0  # the report's fixed loss scale for float16


def cpu_has_bfloat16():
    """True where the CPU computes bfloat16 natively (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def precision(use_mixed_precision, on_gpu=None):
    """(Keras dtype policy, fixed loss scale or None) of a run."""
    if not use_mixed_precision:
        return "float32", None
    if on_gpu is None:
        import tensorflow as tf
        on_gpu = bool(tf.config.list_physical_devices("GPU"))
    if on_gpu:
        return "mixed_float16", LOSS_SCALE
    return ("mixed_bfloat16", None) if cpu_has_bfloat16() else ("float32", None)
