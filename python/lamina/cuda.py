"""The CUDA backend: device query, synchronisation and device memory.

Works in every build: without CUDA support (or without a driver) ``is_available()`` is
False and ``device_count()`` is 0. Tensors move with ``x.to("cuda")``, ``x.cuda()`` and
``x.cpu()``; creation functions take ``device=``.
"""

from lamina import _core

_cuda = _core.cuda

#: True when this build of Lamina includes the CUDA backend (real or emulated).
built = _cuda.built
#: True when the backend runs on the SIMT emulator (CPU), not on a GPU.
emulated = _cuda.emulated


def is_available():
    """Returns True when the backend is built and a device is present."""
    return _cuda.is_available()


def device_count():
    """Returns the number of CUDA devices (0 without a driver or backend)."""
    return _cuda.device_count()


def synchronize():
    """Waits for all queued work on the device to finish."""
    _cuda.synchronize()


def memory_stats():
    """Returns the caching allocator's counters as a dict.

    Keys: ``allocated_bytes`` (held by live tensors), ``reserved_bytes`` (obtained from the
    device, including the cache), ``peak_allocated_bytes``, ``device_mallocs`` and
    ``device_frees`` (cudaMalloc / cudaFree calls so far) and ``cache_hits``.
    """
    return _cuda.memory_stats()


def empty_cache():
    """Returns cached, unused device memory to the device."""
    _cuda.empty_cache()


def kernel_launches():
    """Returns how many kernels Lamina has launched in this process.

    Counts every launch (the emulator's too); the difference around a call says how many
    launches it made, e.g. one per dtype for a fused optimizer step.
    """
    return _cuda.kernel_launches()


def set_float32_matmul_precision(precision):
    """Sets what float32 matmuls (and ``linear``) on CUDA devices may use.

    ``"highest"`` (the default): exact fp32 FMA. ``"high"``: TF32 tensor cores, with the
    operands rounded to a 10-bit mantissa (relative error ~2^-11 per product) and fp32
    accumulation, as ``torch.backends.cuda.matmul.allow_tf32``. CPU matmuls are always fp32.
    """
    _cuda.set_float32_matmul_precision(precision)


def get_float32_matmul_precision():
    """Returns ``"highest"`` or ``"high"`` (see ``set_float32_matmul_precision``)."""
    return _cuda.get_float32_matmul_precision()


def conv_path_counts():
    """Returns how many conv passes ran each device path in this process, as a dict.

    Keys: ``depthwise`` (the direct kernels, taken when there are several groups of one input
    channel each) and ``implicit_gemm`` (every other conv). A pass is one forward, or one
    backward for the input and/or weight gradient.
    """
    return _cuda.conv_path_counts()
