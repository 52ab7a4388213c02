/* y = x @ W + b for a few float32 rows x and half-precision weights W: the products of the numpy query forward
 * (embeddings/lean.py).
 *
 * A query's products are 5-20 rows against 384 x 1152 ... 1536 x 384 weights. They are bound by reading the
 * weights, not by arithmetic: the model's 42 MB of float32 layer weights do not stay in a 32 MB L3 beside
 * anything else, and OpenBLAS multiplied such a product at 18 GFLOP/s from memory against 51 from cache.
 * Stored as IEEE half floats the weights are 21 MB, read once per product, widened to float32 in registers
 * (F16C) and accumulated in float32 (FMA): vectors within a cosine of 0.9999998 of the float32 forward.
 *
 * W is packed in strips of 16 columns, (N / 16, K, 16), so one strip (K x 32 bytes) is read from memory once
 * and from L1/L2 for each group of up to 6 rows: 6 rows x 16 columns are 12 ymm accumulators. The GIL is
 * released while it multiplies, so the caller's other threads run meanwhile.
 *
 * available() is false where the CPU lacks AVX2, FMA or F16C (checked at run time) or the compiler is not
 * GCC/Clang on x86-64; the caller then keeps its float32 numpy products. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define GEMM_X86 1
#include <immintrin.h>
#endif

#define STRIP 16
#define GROUP 6

#ifdef GEMM_X86
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline void
group(const int rows, const float *x, Py_ssize_t k_dim, const uint16_t *strip, const float *bias, float *y,
      Py_ssize_t n_dim)
{
    __m256 acc[GROUP][2];
    const __m256 b0 = _mm256_loadu_ps(bias), b1 = _mm256_loadu_ps(bias + 8);
#pragma GCC unroll 6
    for (int r = 0; r < rows; r++) {
        acc[r][0] = b0;
        acc[r][1] = b1;
    }
    for (Py_ssize_t k = 0; k < k_dim; k++) {
        const __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(strip + k * STRIP)));
        const __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(strip + k * STRIP + 8)));
#pragma GCC unroll 6
        for (int r = 0; r < rows; r++) {
            const __m256 xv = _mm256_broadcast_ss(x + r * k_dim + k);
            acc[r][0] = _mm256_fmadd_ps(xv, w0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(xv, w1, acc[r][1]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < rows; r++) {
        _mm256_storeu_ps(y + r * n_dim, acc[r][0]);
        _mm256_storeu_ps(y + r * n_dim + 8, acc[r][1]);
    }
}

__attribute__((target("avx2,fma,f16c"))) static void
gemm(const float *x, Py_ssize_t n, Py_ssize_t k_dim, const uint16_t *w, Py_ssize_t strips, const float *bias,
     float *y)
{
    const Py_ssize_t n_dim = strips * STRIP;
    for (Py_ssize_t s = 0; s < strips; s++) {
        const uint16_t *strip = w + s * k_dim * STRIP;
        for (Py_ssize_t r0 = 0; r0 < n; r0 += GROUP) {
            const float *xr = x + r0 * k_dim;
            float *yr = y + r0 * n_dim + s * STRIP;
            switch (n - r0 < GROUP ? (int)(n - r0) : GROUP) {
            case 6: group(6, xr, k_dim, strip, bias + s * STRIP, yr, n_dim); break;
            case 5: group(5, xr, k_dim, strip, bias + s * STRIP, yr, n_dim); break;
            case 4: group(4, xr, k_dim, strip, bias + s * STRIP, yr, n_dim); break;
            case 3: group(3, xr, k_dim, strip, bias + s * STRIP, yr, n_dim); break;
            case 2: group(2, xr, k_dim, strip, bias + s * STRIP, yr, n_dim); break;
            default: group(1, xr, k_dim, strip, bias + s * STRIP, yr, n_dim); break;
            }
        }
    }
}
#endif

static int
cpu_ok(void)
{
#ifdef GEMM_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
    return 0;
#endif
}

static PyObject *
available(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyBool_FromLong(cpu_ok());
}

/* A C-contiguous buffer of `ndim` dimensions and items of `itemsize` bytes in format `fmt`, else an error. */
static int
take(PyObject *obj, Py_buffer *view, int writable, int ndim, const char *fmt, const char *name)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    const char *f = view->format ? view->format : "B";
    if (*f == '<' || *f == '=' || *f == '@')
        f++;
    if (view->ndim != ndim || strcmp(f, fmt) != 0) {
        PyErr_Format(PyExc_ValueError, "%s: expected a C-contiguous %d-d array of format '%s', got %d-d '%s'",
                     name, ndim, fmt, view->ndim, f);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static PyObject *
linear(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *xo, *wo, *bo, *yo;
    if (!PyArg_ParseTuple(args, "OOOO:linear", &xo, &wo, &bo, &yo))
        return NULL;
    if (!cpu_ok()) {
        PyErr_SetString(PyExc_RuntimeError, "this CPU lacks AVX2, FMA or F16C");
        return NULL;
    }
    Py_buffer x, w, b, y;
    if (take(xo, &x, 0, 2, "f", "x") < 0)
        return NULL;
    if (take(wo, &w, 0, 3, "e", "weights") < 0) {
        PyBuffer_Release(&x);
        return NULL;
    }
    if (take(bo, &b, 0, 1, "f", "bias") < 0) {
        PyBuffer_Release(&x);
        PyBuffer_Release(&w);
        return NULL;
    }
    if (take(yo, &y, 1, 2, "f", "out") < 0) {
        PyBuffer_Release(&x);
        PyBuffer_Release(&w);
        PyBuffer_Release(&b);
        return NULL;
    }
    const Py_ssize_t n = x.shape[0], k_dim = x.shape[1], strips = w.shape[0];
    int ok = w.shape[1] == k_dim && w.shape[2] == STRIP && b.shape[0] == strips * STRIP && y.shape[0] == n
             && y.shape[1] == strips * STRIP;
    if (!ok)
        PyErr_SetString(PyExc_ValueError, "linear: shapes do not match (x (n, K), weights (N/16, K, 16), bias (N,), "
                                          "out (n, N))");
#ifdef GEMM_X86
    if (ok) {
        Py_BEGIN_ALLOW_THREADS
        gemm((const float *)x.buf, n, k_dim, (const uint16_t *)w.buf, strips, (const float *)b.buf, (float *)y.buf);
        Py_END_ALLOW_THREADS
    }
#endif
    PyBuffer_Release(&x);
    PyBuffer_Release(&w);
    PyBuffer_Release(&b);
    PyBuffer_Release(&y);
    if (!ok)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"available", available, METH_NOARGS, "True where this CPU runs linear (AVX2, FMA and F16C)."},
    {"linear", linear, METH_VARARGS,
     "linear(x, weights, bias, out): out = x @ W + bias; x float32 (n, K), weights float16 (N/16, K, 16), the "
     "strips of W's columns; bias float32 (N,); out float32 (n, N). All C-contiguous."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_gemm", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC
PyInit__gemm(void)
{
    return PyModule_Create(&module);
}
