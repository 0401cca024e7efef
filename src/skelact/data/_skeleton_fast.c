/*
 * One-pass C reader for the common case of an NTU RGB+D ``.skeleton`` file.
 *
 * Why C: the NumPy reader in skeleton_file.py makes ~20 vectorised passes over every file
 * (byte checks, newline and token scans, digit arithmetic); one pass in C does the same work
 * several times faster, and preprocessing is mostly this.
 *
 * Contract (what makes it safe to have two readers): ``parse`` accepts a strict subset of what the
 * NumPy reader accepts and, on that subset, returns the same values bit for bit. Anything else --
 * any format error, an unusual but valid token (more than 19 mantissa digits, a decimal exponent
 * beyond +-22, a header line with spaces or a sign) -- makes it return None, and the caller runs
 * the NumPy reader, which either reads the file or raises the error that names the line. So
 * errors and rare inputs have one implementation, and this file only has to be exact.
 *
 * Exactness: a number is [sign] digits [. digits] [(e|E) [sign] digits]. Its mantissa digits m
 * form an exact integer (m <= 2**53 is required) and, with the decimal exponent k in [-22, 22],
 * 10**|k| is an exact double, so one IEEE multiplication or division is the correctly rounded
 * value of the decimal string: Clinger's fast path, which is also what Python's float() and the
 * NumPy reader return for it (both are correctly rounded). Nothing here is compiled with
 * -ffast-math, and a single operation leaves no room for contraction.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* The layout (joints per body, fields per body and joint line) comes from skeleton_file.py. */
typedef struct {
    int joints, body_fields, joint_fields;
} Layout;

#define MAX_DIGITS 19        /* a uint64 holds any 19 decimal digits */
#define MAX_EXACT 9007199254740992ULL /* 2**53 */

static const double POW10[23] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* Byte classes: 1 separator within a line (space, tab, CR), 2 a number character. */
static unsigned char CLASS[256];

static void init_classes(void) {
    CLASS[' '] = CLASS['\t'] = CLASS['\r'] = 1;
    for (int c = '0'; c <= '9'; c++) CLASS[c] = 2;
    CLASS['.'] = CLASS['-'] = CLASS['+'] = CLASS['e'] = CLASS['E'] = 2;
}

/* The scanner relies on the NUL byte that ends every Python bytes object: NUL is of class 0, so
 * every loop stops there without a bounds check, and ``at_end`` tells the real end from a NUL
 * inside the file (which is refused like any other unexpected byte). */
typedef struct {
    const unsigned char *p, *end;
} Cursor;

static int at_end(const Cursor *c) { return c->p == c->end; }

/* Past a newline, or at the end of the data; 0 on anything else. */
static int newline(Cursor *c) {
    if (*c->p == '\n') {
        c->p++;
        return 1;
    }
    return at_end(c);
}

/* A line holding only a non-negative integer of at most 9 digits, optionally followed by CR;
 * moves past its newline. -1 when the line is anything else. */
static long count_line(Cursor *c) {
    const unsigned char *p = c->p;
    long value = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9') {
        if (++digits > 9) return -1;
        value = value * 10 + (*p++ - '0');
    }
    if (!digits) return -1;
    if (*p == '\r') p++;
    c->p = p;
    return newline(c) ? value : -1;
}

/* Skip separators; 1 if a token follows on this line. */
static int next_token(Cursor *c) {
    while (CLASS[*c->p] == 1) c->p++;
    return CLASS[*c->p] == 2;
}

/* Skip ``n`` tokens of number characters (checked, not converted); 0 if the line has fewer. */
static int skip_tokens(Cursor *c, int n) {
    for (; n > 0; n--) {
        if (!next_token(c)) return 0;
        while (CLASS[*c->p] == 2) c->p++;
    }
    return 1;
}

/* End of line after the last token: separators, then a newline or the end. */
static int end_of_line(Cursor *c) {
    while (CLASS[*c->p] == 1) c->p++;
    return newline(c);
}

/* One token as a double by the exact fast path; 0 when it is not a plain decimal or not exact. */
static int number(Cursor *c, double *out) {
    const unsigned char *p = c->p;
    int negative = 0, digits = 0, fraction = 0, exp_negative = 0, exp_digits = 0;
    uint64_t m = 0;
    long e = 0;
    if (*p == '+' || *p == '-') negative = *p++ == '-';
    while (*p >= '0' && *p <= '9') {
        if (++digits > MAX_DIGITS) return 0;
        m = m * 10 + (uint64_t)(*p++ - '0');
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (++digits > MAX_DIGITS) return 0;
            m = m * 10 + (uint64_t)(*p++ - '0');
            fraction++;
        }
    }
    if (!digits) return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') exp_negative = *p++ == '-';
        while (*p >= '0' && *p <= '9') {
            if (++exp_digits > 4) return 0;
            e = e * 10 + (*p++ - '0');
        }
        if (!exp_digits) return 0;
    }
    if (CLASS[*p] == 2) return 0; /* e.g. '1.2.3', '1-2', '1e5e' */
    long k = (exp_negative ? -e : e) - fraction;
    if (m > MAX_EXACT || k < -22 || k > 22) return 0;
    double v = (double)m;
    v = k >= 0 ? v * POW10[k] : v / POW10[-k];
    *out = negative ? -v : v;
    c->p = p;
    return 1;
}

/* ``parse(data, max_bodies, joints, body_fields, joint_fields)`` -> ``(frames, bytearray)`` of
 * float64 (max_bodies, frames, joints, 3), zero where a frame has fewer bodies; or None (the
 * caller then uses the NumPy reader). */
static PyObject *parse(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *data, *out = NULL;
    int max_bodies;
    Layout L;
    if (!PyArg_ParseTuple(args, "Siiii", &data, &max_bodies, &L.joints, &L.body_fields,
                          &L.joint_fields))
        return NULL;
    const unsigned char *buf = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t len = PyBytes_GET_SIZE(data);
    Cursor c = {buf, buf + len}; /* buf[len] is NUL: the sentinel */
    long frames = count_line(&c);
    /* every frame takes at least two bytes ("0\n"): more frames than that is a truncated file */
    if (frames <= 0 || max_bodies < 0 || L.joints <= 0 || L.joint_fields < 3 ||
        frames > len / 2 + 1)
        goto refuse;
    Py_ssize_t frame_values = (Py_ssize_t)L.joints * 3;
    Py_ssize_t size = (Py_ssize_t)max_bodies * frames * frame_values * (Py_ssize_t)sizeof(double);
    out = PyByteArray_FromStringAndSize(NULL, size);
    if (!out) return NULL;
    double *values = (double *)PyByteArray_AS_STRING(out);
    memset(values, 0, (size_t)size);
    for (long frame = 0; frame < frames; frame++) {
        long bodies = count_line(&c);
        if (bodies < 0) goto refuse;
        for (long body = 0; body < bodies; body++) {
            if (!skip_tokens(&c, L.body_fields) || !end_of_line(&c) || count_line(&c) != L.joints)
                goto refuse;
            double *row = body < max_bodies
                              ? values + ((Py_ssize_t)body * frames + frame) * frame_values
                              : NULL;
            for (int joint = 0; joint < L.joints; joint++) {
                for (int axis = 0; axis < 3; axis++) {
                    double v;
                    if (!next_token(&c) || !number(&c, &v)) goto refuse;
                    if (row) row[joint * 3 + axis] = v;
                }
                if (!skip_tokens(&c, L.joint_fields - 3) || !end_of_line(&c)) goto refuse;
            }
        }
    }
    for (; !at_end(&c); c.p++) /* only blank lines may follow the last frame */
        if (CLASS[*c.p] != 1 && *c.p != '\n') goto refuse;
    return Py_BuildValue("lN", frames, out);
refuse:
    Py_XDECREF(out);
    Py_RETURN_NONE;
}

static PyMethodDef METHODS[] = {
    {"parse", parse, METH_VARARGS,
     "parse(data: bytes, max_bodies, joints, body_fields, joint_fields) -> (frames, bytearray of "
     "float64 (max_bodies, frames, joints, 3)) or None when the file is not the plain common "
     "case (the NumPy reader then decides)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_skeleton_fast",
    .m_doc = "One-pass C reader of plain NTU .skeleton files (see skeleton_file.py).",
    .m_size = -1,
    .m_methods = METHODS,
};

PyMODINIT_FUNC PyInit__skeleton_fast(void) {
    init_classes();
    return PyModule_Create(&MODULE);
}
