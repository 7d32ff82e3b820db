"""numpy <-> C pointers, with the checks that keep bad arguments from reaching C."""
import ctypes

import numpy as np

from ._lib import ERR_INVALID_ARG, ERR_SHAPE, ERR_STATE, Error

_CTYPE = {np.dtype(np.float32): ctypes.c_float, np.dtype(np.int32): ctypes.c_int32,
          np.dtype(np.float64): ctypes.c_double, np.dtype(np.uint8): ctypes.c_uint8}


def as_int32(x, name, ndim=None, shape=None):
    """x as a C-contiguous int32 array: no copy if it already is one; other
    integer dtypes are converted (values must fit in int32)."""
    a = np.asarray(x)
    if a.dtype != np.int32:
        if not np.issubdtype(a.dtype, np.integer) and not (a.size == 0 and a.dtype == np.float64):
            raise Error(ERR_INVALID_ARG, "%s must hold integers, got dtype %s" % (name, a.dtype))
        if a.size and (a.min() < -2**31 or a.max() >= 2**31):
            raise Error(ERR_INVALID_ARG, "%s has values outside int32" % name)
        a = a.astype(np.int32)
    return _shaped(np.ascontiguousarray(a), name, ndim, shape)


def as_float(x, name, ndim=None, shape=None, dtype=np.float32):
    """x as a C-contiguous float32 (or dtype) array: no copy if it already is one."""
    a = np.asarray(x)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise Error(ERR_INVALID_ARG, "%s must hold real numbers, got dtype %s" % (name, a.dtype))
    a = np.ascontiguousarray(a, dtype=dtype)
    return _shaped(a, name, ndim, shape)


def _shaped(a, name, ndim, shape):
    if ndim is not None and a.ndim != ndim:
        raise Error(ERR_SHAPE, "%s must have %d dimensions, got shape %s" % (name, ndim, a.shape))
    if shape is not None:
        for want, got in zip(shape, a.shape):
            if want is not None and want != got:
                raise Error(ERR_SHAPE, "%s must have shape %s, got %s"
                            % (name, tuple("?" if s is None else s for s in shape), a.shape))
        if len(shape) != a.ndim:
            raise Error(ERR_SHAPE, "%s must have %d dimensions, got shape %s" % (name, len(shape), a.shape))
    return a


def ptr(a):
    """Pointer to a C-contiguous numpy array's data (None for None)."""
    if a is None:
        return None
    if not a.flags.c_contiguous:
        raise Error(ERR_INVALID_ARG, "internal: array is not C-contiguous")
    return a.ctypes.data_as(ctypes.POINTER(_CTYPE[a.dtype]))


def copy_out(p, shape, dtype):
    """A numpy copy of n elements at a C pointer (empty for a NULL pointer and n = 0)."""
    n = int(np.prod(shape)) if len(shape) else 1
    if n == 0:
        return np.zeros(shape, dtype=dtype)
    if not p:
        return None
    view = np.ctypeslib.as_array(ctypes.cast(p, ctypes.POINTER(_CTYPE[np.dtype(dtype)])), shape=(n,))
    return view.copy().reshape(shape)


def text(b):
    return b.decode("utf-8", "replace") if b is not None else None


class Handle:
    """An owned C object. `close()` frees it once; any later use raises
    Error(ICL_ERR_STATE) instead of touching freed memory."""

    _kind = "object"
    _ptr = None

    def _set(self, p):
        self._ptr = p

    @property
    def ptr(self):
        slot = getattr(self, "_slot", None)
        if slot is not None and slot[0] is None:
            self._ptr = None
            raise Error(ERR_STATE, "this %s was freed together with its model" % self._kind)
        if self._ptr is None:
            raise Error(ERR_STATE, "this %s was closed (freed) and cannot be used" % self._kind)
        return self._ptr

    @property
    def closed(self):
        return self._ptr is None

    def _free(self, p):
        raise NotImplementedError

    def close(self):
        p, self._ptr = self._ptr, None
        slot = getattr(self, "_slot", None)
        if slot is not None:
            p, slot[0] = slot[0], None
            if p is not None:
                slot[1](p)
        elif p is not None:
            self._free(p)

    def _adopt_from(self, owner, p, free):
        """Make this handle a dependent of `owner` (a model): the owner frees
        it first when the owner is freed, whatever order the garbage collector
        finalises the two in."""
        self._slot = [p, free]
        owner._children.append(self._slot)
        self._ptr = p

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
