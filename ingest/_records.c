/* Native fast path for Google Takeout Records.json (ingest/sources/location/google_records.py).

   parse(buf, pos, end) reads the run of complete elements of the "locations" array that starts at
   buf[pos] ('{') and lies within buf[:end], in one pass and without the GIL, and returns columns:

       (n, consumed,
        latitudeE7, longitudeE7, accuracy, altitude,            float64 bytes, NaN where null/absent
        source, timestamp, timestampMs,                         each (int32 offsets, data, uint8 valid)
        starts, ends)                                           int64 bytes: each element's span, from pos

   or None when not even one element can be read this way. It reads strict JSON and only the plain case:
   ASCII, no backslash escapes, the kept fields of the expected types (numbers; strings; null). At the
   first element that is anything else it stops before it (or returns None when it is the first), and the
   Python caller reads from there element by element, which says what is wrong. An element that runs past
   `end` is left for the next window. The Python path without this module reads the same columns
   (google_records._fast_numpy); tests compare the two. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64
#define NUMS 4
#define STRS 3

typedef struct {
    char *p;
    size_t len, cap;
} Buf;

static int put(Buf *b, const void *src, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) return 0;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
    return 1;
}

typedef struct {
    Buf num[NUMS];
    Buf off[STRS], data[STRS], valid[STRS];
    Buf starts, ends;
    Py_ssize_t n;
} Out;

static const char *NUM_KEYS[NUMS] = {"latitudeE7", "longitudeE7", "accuracy", "altitude"};
static const char *STR_KEYS[STRS] = {"source", "timestamp", "timestampMs"};

enum { OK = 1, MORE = 0, BAD = -1 };

typedef const unsigned char *Ptr;

static Ptr ws(Ptr p, Ptr e) {
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    return p;
}

/* A string at *p ('"'): plain ASCII, no escapes, no control characters. */
static int string(Ptr *pp, Ptr e, Ptr *s, size_t *len) {
    Ptr p = *pp + 1, q = p;
    while (q < e && *q != '"') {
        if (*q < 0x20 || *q >= 0x80 || *q == '\\') return BAD;
        q++;
    }
    if (q >= e) return MORE;
    *s = p;
    *len = (size_t)(q - p);
    *pp = q + 1;
    return OK;
}

/* An object member's key and the ':' after it; *pp then points at the value. */
static int member_key(Ptr *pp, Ptr e, Ptr *s, size_t *len) {
    Ptr p = *pp;
    int r;
    if (*p != '"') return BAD;
    if ((r = string(&p, e, s, len)) != OK) return r;
    p = ws(p, e);
    if (p >= e) return MORE;
    if (*p != ':') return BAD;
    p = ws(p + 1, e);
    if (p >= e) return MORE;
    *pp = p;
    return OK;
}

static int literal(Ptr *pp, Ptr e, const char *word) {
    size_t n = strlen(word);
    Ptr p = *pp;
    for (size_t i = 0; i < n; i++) {
        if (p + i >= e) return MORE;
        if (p[i] != (unsigned char)word[i]) return BAD;
    }
    *pp = p + n;
    return OK;
}

/* A JSON number at *p: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int number(Ptr *pp, Ptr e, double *out) {
    Ptr p = *pp, s = p;
    int plain = 1;
    if (p < e && *p == '-') p++;
    if (p >= e) return MORE;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < e && *p >= '0' && *p <= '9') p++;
    } else {
        return BAD;
    }
    if (p < e && *p == '.') {
        plain = 0;
        p++;
        Ptr d = p;
        while (p < e && *p >= '0' && *p <= '9') p++;
        if (p == d) return p >= e ? MORE : BAD;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        plain = 0;
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        Ptr d = p;
        while (p < e && *p >= '0' && *p <= '9') p++;
        if (p == d) return p >= e ? MORE : BAD;
    }
    if (p >= e) return MORE; /* the number may go on in the next window */
    size_t len = (size_t)(p - s);
    if (plain && len <= 16) { /* an integer below 2^53: exact */
        int64_t v = 0;
        Ptr d = s + (*s == '-');
        for (; d < p; d++) v = v * 10 + (*d - '0');
        *out = (double)(*s == '-' ? -v : v);
    } else {
        char tmp[64];
        if (len >= sizeof tmp) return BAD;
        memcpy(tmp, s, len);
        tmp[len] = 0;
        char *stop;
        *out = strtod(tmp, &stop);
        if (stop != tmp + len || !isfinite(*out)) return BAD;
    }
    *pp = p;
    return OK;
}

static int skip(Ptr *pp, Ptr e, int depth);

static int skip_container(Ptr *pp, Ptr e, int depth, unsigned char close) {
    Ptr p = ws(*pp + 1, e);
    if (p >= e) return MORE;
    if (*p == close) {
        *pp = p + 1;
        return OK;
    }
    for (;;) {
        int r;
        if (close == '}') {
            Ptr s;
            size_t len;
            if ((r = member_key(&p, e, &s, &len)) != OK) return r;
        }
        if ((r = skip(&p, e, depth + 1)) != OK) return r;
        p = ws(p, e);
        if (p >= e) return MORE;
        if (*p == close) {
            *pp = p + 1;
            return OK;
        }
        if (*p != ',') return BAD;
        p = ws(p + 1, e);
        if (p >= e) return MORE;
    }
}

/* Any JSON value (a field not kept). */
static int skip(Ptr *pp, Ptr e, int depth) {
    Ptr p = *pp;
    double d;
    Ptr s;
    size_t len;
    if (depth > MAX_DEPTH) return BAD;
    switch (*p) {
        case '{': return skip_container(pp, e, depth, '}');
        case '[': return skip_container(pp, e, depth, ']');
        case '"': return string(pp, e, &s, &len);
        case 't': return literal(pp, e, "true");
        case 'f': return literal(pp, e, "false");
        case 'n': return literal(pp, e, "null");
        default: return number(pp, e, &d);
    }
}

/* One element: an object; its kept fields go to `out` only when the whole element reads. */
static int element(Ptr *pp, Ptr e, Out *out) {
    double nums[NUMS];
    Ptr strs[STRS];
    size_t lens[STRS];
    for (int i = 0; i < NUMS; i++) nums[i] = NAN;
    for (int i = 0; i < STRS; i++) strs[i] = NULL, lens[i] = 0;
    Ptr p = ws(*pp + 1, e);
    if (p >= e) return MORE;
    if (*p != '}') {
        for (;;) {
            Ptr key;
            size_t klen;
            int r, field = -1, kind = 0;
            if ((r = member_key(&p, e, &key, &klen)) != OK) return r;
            for (int i = 0; i < NUMS && field < 0; i++)
                if (strlen(NUM_KEYS[i]) == klen && memcmp(NUM_KEYS[i], key, klen) == 0) field = i, kind = 1;
            for (int i = 0; i < STRS && field < 0; i++)
                if (strlen(STR_KEYS[i]) == klen && memcmp(STR_KEYS[i], key, klen) == 0) field = i, kind = 2;
            if (field >= 0 && *p == 'n') { /* null: as if absent (a later duplicate key wins, as in json) */
                if ((r = literal(&p, e, "null")) != OK) return r;
                if (kind == 1) nums[field] = NAN;
                else strs[field] = NULL;
            } else if (kind == 1) {
                if (*p != '-' && (*p < '0' || *p > '9')) return BAD; /* not a number: the slow path says so */
                if ((r = number(&p, e, &nums[field])) != OK) return r;
            } else if (kind == 2) {
                if (*p != '"') return BAD;
                if ((r = string(&p, e, &strs[field], &lens[field])) != OK) return r;
            } else if ((r = skip(&p, e, 1)) != OK) {
                return r;
            }
            p = ws(p, e);
            if (p >= e) return MORE;
            if (*p == '}') break;
            if (*p != ',') return BAD;
            p = ws(p + 1, e);
            if (p >= e) return MORE;
        }
    }
    *pp = p + 1;
    int ok = 1;
    for (int i = 0; i < NUMS; i++) ok &= put(&out->num[i], &nums[i], sizeof(double));
    for (int i = 0; i < STRS; i++) {
        unsigned char v = strs[i] != NULL;
        if (v) ok &= put(&out->data[i], strs[i], lens[i]);
        int32_t end = (int32_t)out->data[i].len;
        ok &= put(&out->off[i], &end, sizeof end);
        ok &= put(&out->valid[i], &v, 1);
    }
    return ok ? OK : BAD - 1;
}

static void release(Out *o) {
    for (int i = 0; i < NUMS; i++) free(o->num[i].p);
    for (int i = 0; i < STRS; i++) free(o->off[i].p), free(o->data[i].p), free(o->valid[i].p);
    free(o->starts.p);
    free(o->ends.p);
}

static PyObject *bytes_of(Buf *b) {
    return PyBytes_FromStringAndSize(b->p ? b->p : "", (Py_ssize_t)b->len);
}

static PyObject *parse(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    Py_ssize_t pos, end;
    if (!PyArg_ParseTuple(args, "y*nn", &view, &pos, &end)) return NULL;
    if (end > view.len) end = view.len;
    if (pos < 0 || pos >= end || ((Ptr)view.buf)[pos] != '{') {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    Out o;
    memset(&o, 0, sizeof o);
    Ptr base = (Ptr)view.buf + pos, e = (Ptr)view.buf + end, p = base, done = base;
    int oom = 0;
    int32_t zero = 0;
    for (int i = 0; i < STRS; i++) oom |= !put(&o.off[i], &zero, sizeof zero);
    Py_BEGIN_ALLOW_THREADS
    while (!oom && p < e && *p == '{') {
        Ptr s = p;
        int r = element(&p, e, &o);
        if (r < BAD) oom = 1;
        if (r != OK) break;
        int64_t a = s - base, b = p - base;
        oom |= !put(&o.starts, &a, sizeof a) || !put(&o.ends, &b, sizeof b);
        o.n++;
        done = p;
        p = ws(p, e);
        if (p >= e || *p != ',') break; /* "]", the end of the window, or something the slow path reads */
        p = ws(p + 1, e);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    PyObject *res = NULL;
    if (oom) {
        PyErr_NoMemory();
    } else if (o.n == 0) {
        res = Py_NewRef(Py_None);
    } else {
        res = PyTuple_New(4 + NUMS + 3 * STRS);
        int ok = res != NULL;
        if (ok) {
            PyTuple_SET_ITEM(res, 0, PyLong_FromSsize_t(o.n));
            PyTuple_SET_ITEM(res, 1, PyLong_FromSsize_t(done - base));
            for (int i = 0; i < NUMS; i++) PyTuple_SET_ITEM(res, 2 + i, bytes_of(&o.num[i]));
            for (int i = 0; i < STRS; i++) {
                PyTuple_SET_ITEM(res, 2 + NUMS + 3 * i, bytes_of(&o.off[i]));
                PyTuple_SET_ITEM(res, 3 + NUMS + 3 * i, bytes_of(&o.data[i]));
                PyTuple_SET_ITEM(res, 4 + NUMS + 3 * i, bytes_of(&o.valid[i]));
            }
            PyTuple_SET_ITEM(res, 2 + NUMS + 3 * STRS, bytes_of(&o.starts));
            PyTuple_SET_ITEM(res, 3 + NUMS + 3 * STRS, bytes_of(&o.ends));
            for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(res); i++) ok &= PyTuple_GET_ITEM(res, i) != NULL;
        }
        if (!ok) Py_CLEAR(res);
    }
    release(&o);
    return res;
}

static PyMethodDef methods[] = {
    {"parse", parse, METH_VARARGS, "parse(buf, pos, end) -> columns of the plain elements at buf[pos:end], or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_records", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__records(void) { return PyModule_Create(&module); }
