/* The SIP layer's commonest text scans, in C: a message's header block split into its
 * fields (vosapp.sip.parser.parse), a Digest header's auth-params (vosapp.sip.digest), a
 * Via's branch value found (vosapp.sip.headers.ViaMemo), a Call-ID checked and a From's tag
 * value found (vosapp.sip.parser); and its message writer
 * (vosapp.sip.message). Each is the common case of a Python function that stays behind it:
 * a scan here returns None for anything else, and the Python path then decides, with its
 * precise errors, so what is accepted and what it gives never depend on this module being
 * built (setup.py builds it when it can, like the media extensions; tests/sip/test_scan.py
 * and test_digest.py hold both paths equal on generated texts).
 *
 * head_fields(head, key_cache) -> (start_line, fields) | None
 *   The header block (everything before the empty line, decoded) split at its CRLFs: the
 *   start line, then each header line as [key, name, value, line], value stripped of SP and
 *   HTAB, key from key_cache (parser._KEY_CACHE: name -> canonical key, filled by the
 *   Python path the first time it meets a name). None when a line holds a lone CR or LF,
 *   has no colon, or has a name the cache does not hold (folded lines, a new or malformed
 *   name, spaces before the colon): parse's Python path then splits the block itself.
 *   In compiled Python the split, the CR/LF check and _parse_fields cost about 17,000
 *   instructions a message; this scan makes the same strings and lists, so what it saves is
 *   the glue around them, about a half (docs/benchmarks.md, thirty-sixth round).
 *
 * message_bytes(start_line, fields, body) -> bytes | None
 *   What Message.__bytes__ writes (vosapp/sip/message.py): the start line, each field's
 *   source line (or "name: value" when it has none), the first Content-Length only and
 *   rewritten to len(body) when it says otherwise (or added when absent), the empty line,
 *   the body. None unless every text is ASCII and every field a list of four str: the
 *   Python writer then writes it (surrogate escapes, Latin-1 and wider text included). In
 *   compiled Python it cost about 7,000 instructions a message: an f-string per field, the
 *   list, the join and the encoding (docs/benchmarks.md, thirty-seventh round).
 *
 * auth_params(text) -> dict | None
 *   The common case of digest._parse_params: digest._parse_params tries three ways, each
 *   taking a subset of the next one's texts and giving the same result on it: this function,
 *   the one-pass regex (_parse_params_fast), the general scanner (_scan_params, with the
 *   precise errors). The regex pass cost a registration about 47,000 instructions in
 *   process, 9 % of it: findall's C loop tries its alternatives at every character and
 *   builds a tuple of four strings per param (docs/benchmarks.md, thirty-sixth round).
 *   It takes the value stripped of spaces and tabs, as _parse_params_fast does, and returns
 *   {name lowercased: value} or None. A dict is returned only for
 *     "Digest" (any case) SP/HTAB, then params separated by "," with optional SP/HTAB,
 *     each  token [SP/HTAB] "=" [SP/HTAB] (token | '"' chars other than '"' '"')
 *   (RFC 7235 §2.1 auth-param, RFC 7230 §3.2.6 token and quoted-string), in an ASCII text
 *   with no backslash (escapes are the scanner's), no empty list element, no trailing comma
 *   and no name twice: texts on which the regex pass gives the same dict.
 *
 * branch_span(text) -> (start, end) | None
 *   Where the value of a Via text's branch parameter is: the span that
 *   headers._BRANCH_VALUE_RE.search(text).span(1) gives, None where it finds nothing, for
 *   any str. The Via memo (headers.ViaMemo) cuts the value out to look the text up by its
 *   shape, for every request's new top Via; the regex's search, span and group cost about
 *   3,500 instructions a request in compiled Python (docs/benchmarks.md, thirty-eighth
 *   round).
 *
 * call_id_ok(text) -> bool
 *   Whether parser._CALL_ID_RE.fullmatch(text) matches (word ["@" word], RFC 3261 §25.1
 *   callid), for any str: a new Call-ID's regex pass cost about 2,600 instructions
 *   (docs/benchmarks.md, forty-first round).
 *
 * tag_span(text) -> (start, end) | None
 *   Where a From text's tag value is, as parser.tag_span gives it: the parser knows a new
 *   From by its shape (the text without that value) instead of matching the name-addr
 *   regex, about 7,300 instructions (docs/benchmarks.md, forty-first round).
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
auth_params(PyObject *module, PyObject *arg)
{
    (void)module;
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "auth_params() takes a str");
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

/* The names head_fields has met, each with its key, as the key cache it was given holds them
 * (parser._KEY_CACHE only grows, and a name's key never changes: parser._key_of). A name
 * found here is the slot's own str, its hash already computed: no substring of the line, no
 * hash and no dict look-up per field, and fewer strings made and freed (docs/benchmarks.md,
 * thirty-seventh round). Only Latin-1 (1-byte) names are kept, compared byte for byte; the
 * slots belong to one key cache, and another cache passed in empties them first. */
#define NAME_SLOTS 64
static PyObject *slots_cache; /* the key cache the slots came from (held, so its id stays) */
static PyObject *slot_names[NAME_SLOTS];
static PyObject *slot_keys[NAME_SLOTS];
static Py_ssize_t slot_lengths[NAME_SLOTS];
static Py_ssize_t slot_count;

static void
slots_for(PyObject *key_cache)
{
    if (slots_cache == key_cache)
        return;
    Py_ssize_t count = slot_count;
    slot_count = 0;
    for (Py_ssize_t k = 0; k < count; k++) {
        Py_CLEAR(slot_names[k]);
        Py_CLEAR(slot_keys[k]);
    }
    Py_INCREF(key_cache);
    Py_XSETREF(slots_cache, key_cache);
}

/* The slot holding the 1-byte name name[:length], or -1. */
static Py_ssize_t
slot_of(const Py_UCS1 *name, Py_ssize_t length)
{
    for (Py_ssize_t k = 0; k < slot_count; k++) {
        if (slot_lengths[k] == length
                && memcmp(PyUnicode_1BYTE_DATA(slot_names[k]), name, (size_t)length) == 0)
            return k;
    }
    return -1;
}

/* One header line's [key, name, value, line]: name = line[:colon], value = line[colon + 1:]
 * stripped of SP and HTAB. None when the key cache does not hold the name. */
static PyObject *
field_of(PyObject *line, int kind, const void *data, Py_ssize_t length, Py_ssize_t colon,
         PyObject *key_cache)
{
    PyObject *name, *key;
    Py_ssize_t slot = kind == PyUnicode_1BYTE_KIND ? slot_of(data, colon) : -1;
    if (slot >= 0) {
        name = slot_names[slot];
        key = slot_keys[slot];
        Py_INCREF(name);
        Py_INCREF(key);
        goto have_key;
    }
    name = PyUnicode_Substring(line, 0, colon);
    if (name == NULL)
        return NULL;
    key = PyDict_GetItemWithError(key_cache, name); /* borrowed */
    if (key == NULL) {
        Py_DECREF(name);
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE; /* a name the Python path has not met, or not a name */
    }
    /* held from here: the allocations below may run a collection, and a finalizer could
     * touch the cache */
    Py_INCREF(key);
    if (!PyUnicode_CheckExact(key)) {
        Py_DECREF(key);
        Py_DECREF(name);
        PyErr_SetString(PyExc_TypeError, "head_fields(): the key cache holds a non-str");
        return NULL;
    }
    if (kind == PyUnicode_1BYTE_KIND && slot_count < NAME_SLOTS
            && PyUnicode_CheckExact(name) && PyUnicode_KIND(name) == PyUnicode_1BYTE_KIND) {
        Py_INCREF(name);
        Py_INCREF(key);
        slot_names[slot_count] = name;
        slot_keys[slot_count] = key;
        slot_lengths[slot_count] = colon;
        slot_count++;
    }
have_key:;
    Py_ssize_t start = colon + 1, end = length;
    while (start < end) {
        Py_UCS4 c = PyUnicode_READ(kind, data, start);
        if (c != ' ' && c != '\t')
            break;
        start++;
    }
    while (end > start) {
        Py_UCS4 c = PyUnicode_READ(kind, data, end - 1);
        if (c != ' ' && c != '\t')
            break;
        end--;
    }
    PyObject *value = PyUnicode_Substring(line, start, end);
    if (value == NULL) {
        Py_DECREF(key);
        Py_DECREF(name);
        return NULL;
    }
    PyObject *field = PyList_New(4);
    if (field == NULL) {
        Py_DECREF(key);
        Py_DECREF(name);
        Py_DECREF(value);
        return NULL;
    }
    Py_INCREF(line);
    PyList_SET_ITEM(field, 0, key);
    PyList_SET_ITEM(field, 1, name);
    PyList_SET_ITEM(field, 2, value);
    PyList_SET_ITEM(field, 3, line);
    return field;
}

static PyObject *
head_fields(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "head_fields(head: str, key_cache: dict)");
        return NULL;
    }
    PyObject *head = args[0], *key_cache = args[1];
    slots_for(key_cache);
    int kind = PyUnicode_KIND(head);
    const void *data = PyUnicode_DATA(head);
    Py_ssize_t n = PyUnicode_GET_LENGTH(head);
    PyObject *start_line = NULL;
    PyObject *fields = PyList_New(0);
    if (fields == NULL)
        return NULL;
    Py_ssize_t line_start = 0;
    for (;;) {
        /* the line: up to the next CRLF or the end; a lone CR or LF is the Python path's */
        Py_ssize_t i = line_start, colon = -1;
        int at_end = 1;
        for (; i < n; i++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            if (c == '\r') {
                if (i + 1 < n && PyUnicode_READ(kind, data, i + 1) == '\n') {
                    at_end = 0;
                    break;
                }
                goto other_shape;
            }
            if (c == '\n')
                goto other_shape;
            if (c == ':' && colon < 0)
                colon = i - line_start;
        }
        PyObject *line = PyUnicode_Substring(head, line_start, i);
        if (line == NULL)
            goto error;
        if (start_line == NULL) {
            start_line = line;
        } else {
            if (colon < 0) {
                Py_DECREF(line);
                goto other_shape;
            }
            PyObject *field = field_of(line, PyUnicode_KIND(line), PyUnicode_DATA(line),
                                       i - line_start, colon, key_cache);
            Py_DECREF(line);
            if (field == NULL)
                goto error;
            if (field == Py_None) {
                Py_DECREF(field);
                goto other_shape;
            }
            int failed = PyList_Append(fields, field);
            Py_DECREF(field);
            if (failed)
                goto error;
        }
        if (at_end)
            break;
        line_start = i + 2;
    }
    PyObject *result = PyTuple_Pack(2, start_line, fields);
    Py_DECREF(start_line);
    Py_DECREF(fields);
    return result;
other_shape:
    Py_XDECREF(start_line);
    Py_DECREF(fields);
    Py_RETURN_NONE;
error:
    Py_XDECREF(start_line);
    Py_DECREF(fields);
    return NULL;
}

/* The ASCII text of an exact str, or NULL (not a str of ASCII). */
static const char *
ascii_of(PyObject *text, Py_ssize_t *length)
{
    if (!PyUnicode_CheckExact(text) || !PyUnicode_IS_ASCII(text))
        return NULL;
    *length = PyUnicode_GET_LENGTH(text);
    return (const char *)PyUnicode_1BYTE_DATA(text);
}

static int
is_content_length(PyObject *key)
{
    Py_ssize_t n;
    const char *k = ascii_of(key, &n);
    return k != NULL && n == 14 && memcmp(k, "content-length", 14) == 0;
}

#define CONTENT_LENGTH_NAME "Content-Length: "

static PyObject *
message_bytes(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError,
                        "message_bytes(start_line, fields, body) takes 3 arguments");
        return NULL;
    }
    /* anything but a str, a list and bytes: the Python writer's to write or refuse */
    if (!PyList_CheckExact(args[1]) || !PyBytes_CheckExact(args[2]))
        Py_RETURN_NONE;
    PyObject *fields = args[1], *body = args[2];
    Py_ssize_t start_length;
    const char *start = ascii_of(args[0], &start_length);
    if (start == NULL)
        Py_RETURN_NONE;
    char length[24];
    int length_size = snprintf(length, sizeof length, "%zd", PyBytes_GET_SIZE(body));
    /* First pass: check every field and count the bytes; nothing is allocated, so the
     * fields cannot change under it. */
    Py_ssize_t count = PyList_GET_SIZE(fields);
    Py_ssize_t total = start_length + 2;
    int seen_length = 0;
    for (Py_ssize_t f = 0; f < count; f++) {
        PyObject *field = PyList_GET_ITEM(fields, f);
        if (!PyList_CheckExact(field) || PyList_GET_SIZE(field) != 4)
            Py_RETURN_NONE;
        Py_ssize_t name_n, value_n, raw_n;
        const char *name = ascii_of(PyList_GET_ITEM(field, 1), &name_n);
        const char *value = ascii_of(PyList_GET_ITEM(field, 2), &value_n);
        const char *raw = ascii_of(PyList_GET_ITEM(field, 3), &raw_n);
        PyObject *key = PyList_GET_ITEM(field, 0);
        if (name == NULL || value == NULL || raw == NULL || !PyUnicode_CheckExact(key))
            Py_RETURN_NONE;
        if (is_content_length(key)) {
            if (seen_length)
                continue;
            seen_length = 1;
            if (value_n != length_size || memcmp(value, length, (size_t)length_size) != 0) {
                total += name_n + 2 + length_size + 2;
                continue;
            }
        }
        total += (raw_n ? raw_n : name_n + 2 + value_n) + 2;
    }
    if (!seen_length)
        total += (Py_ssize_t)strlen(CONTENT_LENGTH_NAME) + length_size + 2;
    total += 2 + PyBytes_GET_SIZE(body);
    PyObject *result = PyBytes_FromStringAndSize(NULL, total);
    if (result == NULL)
        return NULL;
    /* Second pass: write (PyBytes_FromStringAndSize ran no Python code: the same fields). */
    char *out = PyBytes_AS_STRING(result);
#define PUT(text, n) do { memcpy(out, (text), (size_t)(n)); out += (n); } while (0)
    PUT(start, start_length);
    PUT("\r\n", 2);
    seen_length = 0;
    for (Py_ssize_t f = 0; f < count; f++) {
        PyObject *field = PyList_GET_ITEM(fields, f);
        Py_ssize_t name_n, value_n, raw_n;
        const char *name = ascii_of(PyList_GET_ITEM(field, 1), &name_n);
        const char *value = ascii_of(PyList_GET_ITEM(field, 2), &value_n);
        const char *raw = ascii_of(PyList_GET_ITEM(field, 3), &raw_n);
        if (is_content_length(PyList_GET_ITEM(field, 0))) {
            if (seen_length)
                continue;
            seen_length = 1;
            if (value_n != length_size || memcmp(value, length, (size_t)length_size) != 0) {
                PUT(name, name_n);
                PUT(": ", 2);
                PUT(length, length_size);
                PUT("\r\n", 2);
                continue;
            }
        }
        if (raw_n) {
            PUT(raw, raw_n);
        } else {
            PUT(name, name_n);
            PUT(": ", 2);
            PUT(value, value_n);
        }
        PUT("\r\n", 2);
    }
    if (!seen_length) {
        PUT(CONTENT_LENGTH_NAME, strlen(CONTENT_LENGTH_NAME));
        PUT(length, length_size);
        PUT("\r\n", 2);
    }
    PUT("\r\n", 2);
    PUT(PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body));
#undef PUT
    assert(out == PyBytes_AS_STRING(result) + total);
    return result;
}

/* RFC 3261 §25.1 token: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~"
 * (the characters of headers._BRANCH_VALUE_RE's value). */
static int
is_sip_token_char(Py_UCS4 c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c < 128 && c != 0 && strchr("-.!%*_+`'~", (int)c) != NULL);
}

/* 0 when ``text`` is a str; else -1 with the TypeError that ``function`` raises. */
static int
want_str(PyObject *text, const char *function)
{
    if (PyUnicode_Check(text))
        return 0;
    PyErr_Format(PyExc_TypeError, "%s() needs a str, got %.100s", function,
                 Py_TYPE(text)->tp_name);
    return -1;
}

static PyObject *
branch_span(PyObject *module, PyObject *text)
{
    static const char needle[] = ";branch=";
    const Py_ssize_t needle_n = (Py_ssize_t)(sizeof needle - 1);
    if (want_str(text, "branch_span") < 0)
        return NULL;
    const Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    /* the regex's search: the first ";branch=" whose value (a possessive run of token
     * characters, at least one) ends the text or is followed by ';', SP or HTAB */
    for (Py_ssize_t at = 0; at + needle_n < n; at++) {
        Py_ssize_t i = 0;
        while (i < needle_n && PyUnicode_READ(kind, data, at + i) == (Py_UCS4)needle[i])
            i++;
        if (i < needle_n)
            continue;
        const Py_ssize_t start = at + needle_n;
        Py_ssize_t end = start;
        while (end < n && is_sip_token_char(PyUnicode_READ(kind, data, end)))
            end++;
        if (end == start)
            continue;
        if (end < n) {
            Py_UCS4 next = PyUnicode_READ(kind, data, end);
            if (next != ';' && next != ' ' && next != '\t')
                continue;
        }
        return Py_BuildValue("(nn)", start, end);
    }
    Py_RETURN_NONE;
}

/* parser._CALL_ID_RE's word characters (RFC 3261 §25.1 word): alphanum and
 * -.!%*_+`'~()<>:\"/[]?{} */
static int
is_word_char(Py_UCS4 c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c < 128 && c != 0 && strchr("-.!%*_+`'~()<>:\\\"/[]?{}", (int)c) != NULL);
}

static PyObject *
call_id_ok(PyObject *module, PyObject *text)
{
    (void)module;
    if (want_str(text, "call_id_ok") < 0)
        return NULL;
    const Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    /* word ["@" word]: runs of at least one word character, one "@" at most between them */
    Py_ssize_t run = 0;
    int at_seen = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c == '@' && !at_seen && run > 0) {
            at_seen = 1;
            run = 0;
        } else if (is_word_char(c)) {
            run++;
        } else {
            Py_RETURN_FALSE;
        }
    }
    if (run == 0)
        Py_RETURN_FALSE;
    Py_RETURN_TRUE;
}

static PyObject *
tag_span(PyObject *module, PyObject *text)
{
    static const char needle[] = ";tag=";
    const Py_ssize_t needle_n = (Py_ssize_t)(sizeof needle - 1);
    (void)module;
    if (want_str(text, "tag_span") < 0)
        return NULL;
    const Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t close = n - 1;
    while (close >= 0 && PyUnicode_READ(kind, data, close) != '>')
        close--;
    if (close < 0)
        Py_RETURN_NONE;
    Py_ssize_t found = -1;
    for (Py_ssize_t at = close + 1; at < n; at++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, at);
        if (c == '"')
            Py_RETURN_NONE;
        if (c != ';' || at + needle_n > n)
            continue;
        Py_ssize_t i = 1;
        while (i < needle_n && PyUnicode_READ(kind, data, at + i) == (Py_UCS4)needle[i])
            i++;
        if (i < needle_n)
            continue;
        if (found >= 0)
            Py_RETURN_NONE; /* a second ";tag=" */
        found = at;
    }
    if (found < 0)
        Py_RETURN_NONE;
    const Py_ssize_t start = found + needle_n;
    Py_ssize_t end = start;
    while (end < n && is_sip_token_char(PyUnicode_READ(kind, data, end)))
        end++;
    if (end == start || (end < n && PyUnicode_READ(kind, data, end) != ';'))
        Py_RETURN_NONE;
    return Py_BuildValue("(nn)", start, end);
}

static PyMethodDef scan_methods[] = {
    {"head_fields", (PyCFunction)(void (*)(void))head_fields, METH_FASTCALL,
     "head_fields(head, key_cache) -> (start_line, fields) | None: a header block's start line "
     "and its [key, name, value, line] fields, when every line has the common shape; else None."},
    {"message_bytes", (PyCFunction)(void (*)(void))message_bytes, METH_FASTCALL,
     "message_bytes(start_line, fields, body) -> bytes | None: a message written as "
     "Message.__bytes__ writes it, when every text is ASCII; else None."},
    {"auth_params", auth_params, METH_O,
     "auth_params(text) -> dict | None: a Digest header value's auth-params, lowercased names "
     "to values, when the (stripped) text has the common shape; else None."},
    {"branch_span", branch_span, METH_O,
     "branch_span(text) -> (start, end) | None: the span of a Via text's branch value, as "
     "headers._BRANCH_VALUE_RE.search(text).span(1) gives it; None where it finds nothing."},
    {"call_id_ok", call_id_ok, METH_O,
     "call_id_ok(text) -> bool: whether parser._CALL_ID_RE.fullmatch(text) matches."},
    {"tag_span", tag_span, METH_O,
     "tag_span(text) -> (start, end) | None: the span of a From/To text's tag value, as "
     "parser.tag_span gives it; None where that finds none."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef scan_module = {
    PyModuleDef_HEAD_INIT,
    "_scan",
    "The SIP layer's commonest text scans in C (vosapp.sip.parser, vosapp.sip.digest).",
    0,
    scan_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__scan(void)
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
    return PyModule_Create(&scan_module);
}
