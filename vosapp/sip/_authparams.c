/* The auth-param list of a Digest header value, split in C: the common case of
 * vosapp.sip.digest._parse_params, which every authenticated REGISTER and INVITE parses.
 *
 * digest._parse_params tries three ways, each taking a subset of the next one's texts and
 * giving the same result on it: this function, the one-pass regex (_parse_params_fast), the
 * general scanner (_scan_params, with the precise errors). The regex pass cost a registration
 * about 47,000 instructions in process, 9 % of it: findall's C loop tries its alternatives at
 * every character and builds a tuple of four strings per param (docs/benchmarks.md,
 * thirty-sixth round). Here one pass over the bytes builds the dict.
 *
 * parse(text) takes the value stripped of spaces and tabs, as _parse_params_fast does, and
 * returns {name lowercased: value} or None. None means "not the common shape": the regex pass
 * and the scanner then decide. A dict is returned only for
 *     "Digest" (any case) SP/HTAB, then params separated by "," with optional SP/HTAB,
 *     each  token [SP/HTAB] "=" [SP/HTAB] (token | '"' chars other than '"' '"')
 * (RFC 7235 §2.1 auth-param, RFC 7230 §3.2.6 token and quoted-string), in an ASCII text with
 * no backslash (escapes are the scanner's), no empty list element, no trailing comma and no
 * name twice: texts on which the regex pass gives the same dict (tests/sip/test_digest.py
 * checks it against both on generated texts).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* RFC 7230 §3.2.6 tchar: "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" /
 * "_" / "`" / "|" / "~" / DIGIT / ALPHA */
static unsigned char is_tchar[256];

static void
init_tchars(void)
{
    const char *extra = "!#$%&'*+-.^_`|~";
    for (int c = '0'; c <= '9'; c++)
        is_tchar[c] = 1;
    for (int c = 'a'; c <= 'z'; c++)
        is_tchar[c] = 1;
    for (int c = 'A'; c <= 'Z'; c++)
        is_tchar[c] = 1;
    for (const char *p = extra; *p; p++)
        is_tchar[(unsigned char)*p] = 1;
}

#define IS_WS(c) ((c) == ' ' || (c) == '\t')
#define LONGEST_NAME 64 /* longer names are left to the regex pass */

/* The names RFC 7616 §3.3-3.4 gives the params (lowercase), made once: a known name's key is
 * this interned str with its hash computed, not a new one per param (digest.py then reads
 * them by the same names). */
static const char *const KNOWN_NAMES[] = {
    "username", "realm", "nonce", "uri", "response", "algorithm", "cnonce", "opaque", "qop",
    "nc", "userhash", "stale", "domain",
};
#define KNOWN_COUNT (sizeof KNOWN_NAMES / sizeof KNOWN_NAMES[0])
static PyObject *known_keys[KNOWN_COUNT];
static Py_ssize_t known_lengths[KNOWN_COUNT];

/* The key of a lowercased name: a known name's str (a new reference), else a new str. */
static PyObject *
key_of(const char *name, Py_ssize_t length)
{
    for (size_t k = 0; k < KNOWN_COUNT; k++) {
        if (known_lengths[k] == length && memcmp(KNOWN_NAMES[k], name, (size_t)length) == 0) {
            Py_INCREF(known_keys[k]);
            return known_keys[k];
        }
    }
    return PyUnicode_FromStringAndSize(name, length);
}

static PyObject *
authparams_parse(PyObject *module, PyObject *arg)
{
    (void)module;
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "parse() takes a str");
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(arg))
        Py_RETURN_NONE;
    const char *s = (const char *)PyUnicode_1BYTE_DATA(arg);
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg);
    if (n <= 7 || !IS_WS(s[6]) || PyOS_strnicmp(s, "digest", 6) != 0
            || memchr(s, '\\', (size_t)n) != NULL)
        Py_RETURN_NONE;
    PyObject *params = PyDict_New();
    if (params == NULL)
        return NULL;
    char lowered[LONGEST_NAME];
    Py_ssize_t i = 7;
    for (;;) {
        while (i < n && IS_WS(s[i]))
            i++;
        /* the name */
        Py_ssize_t name_start = i;
        while (i < n && is_tchar[(unsigned char)s[i]])
            i++;
        Py_ssize_t name_length = i - name_start;
        if (name_length == 0 || name_length > LONGEST_NAME)
            goto other_shape;
        while (i < n && IS_WS(s[i]))
            i++;
        if (i >= n || s[i] != '=')
            goto other_shape;
        i++;
        while (i < n && IS_WS(s[i]))
            i++;
        /* the value: a quoted-string without escapes, or a token */
        Py_ssize_t value_start, value_end;
        if (i < n && s[i] == '"') {
            value_start = ++i;
            const char *close = memchr(s + i, '"', (size_t)(n - i));
            if (close == NULL)
                goto other_shape;
            value_end = close - s;
            i = value_end + 1;
        } else {
            value_start = i;
            while (i < n && is_tchar[(unsigned char)s[i]])
                i++;
            value_end = i;
            if (value_end == value_start)
                goto other_shape;
        }
        while (i < n && IS_WS(s[i]))
            i++;
        /* then a comma and the next param, or the end */
        int last = i >= n;
        if (!last && s[i] != ',')
            goto other_shape;
        for (Py_ssize_t k = 0; k < name_length; k++)
            lowered[k] = Py_TOLOWER(s[name_start + k]);
        PyObject *key = key_of(lowered, name_length);
        if (key == NULL)
            goto error;
        int known = PyDict_Contains(params, key);
        if (known != 0) {
            Py_DECREF(key);
            if (known < 0)
                goto error;
            goto other_shape; /* a name twice: the scanner says "duplicate" */
        }
        PyObject *value = PyUnicode_FromStringAndSize(s + value_start, value_end - value_start);
        if (value == NULL) {
            Py_DECREF(key);
            goto error;
        }
        int failed = PyDict_SetItem(params, key, value);
        Py_DECREF(key);
        Py_DECREF(value);
        if (failed)
            goto error;
        if (last)
            return params;
        i++; /* the comma; an empty element or a trailing comma ends as other_shape */
    }
other_shape:
    Py_DECREF(params);
    Py_RETURN_NONE;
error:
    Py_DECREF(params);
    return NULL;
}

static PyMethodDef authparams_methods[] = {
    {"parse", authparams_parse, METH_O,
     "parse(text) -> dict | None: a Digest header value's auth-params, lowercased names to "
     "values, when the (stripped) text has the common shape; else None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef authparams_module = {
    PyModuleDef_HEAD_INIT,
    "_authparams",
    "The common shape of a Digest auth-param list, split in C (vosapp.sip.digest).",
    0,
    authparams_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__authparams(void)
{
    init_tchars();
    for (size_t k = 0; k < KNOWN_COUNT; k++) {
        if (known_keys[k] == NULL) {
            known_keys[k] = PyUnicode_InternFromString(KNOWN_NAMES[k]);
            if (known_keys[k] == NULL)
                return NULL;
            known_lengths[k] = PyUnicode_GET_LENGTH(known_keys[k]);
        }
    }
    return PyModule_Create(&authparams_module);
}
