/* One RTP packet of G.711 <-> G.729 per call: the transcoder's per-packet lane in C.
 *
 * vosapp.media.codecs.g729 loads libbcg729 with ctypes; it hands this module the addresses
 * of bcg729Encoder / bcg729Decoder and of a channel context, so nothing here links against
 * bcg729 or needs its headers (the signatures are those of bcg729 1.1.1 encoder.h/decoder.h,
 * quoted in g729.py). Without this module g729.py does the same work through ctypes, byte
 * for byte (tests/media/test_g729_lane.py compares the two).
 *
 * A lane converts a datagram of a plain 12-byte RTP header (RFC 3550 §5.1: no CSRC, no
 * extension, no padding) and `frames` 10 ms frames into a new datagram: the 12-byte header
 * given by the caller (version 2, the second byte, sequence, timestamp, SSRC), then the
 * converted payload. Checking the incoming header is the caller's business.
 *
 * The same conversion, payload to payload, is exported to other extensions through the
 * capsule _C_API (_g729lane.h): the relay's hub converts a transcoded leg's packets with it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_g729lane.h"

#define RTP_HEADER_SIZE 12
#define FRAME_SAMPLES 80      /* 10 ms at 8 kHz */
#define SPEECH_FRAME_BYTES 10 /* G.729 at 8 kbit/s */
#define MAX_FRAMES 64         /* 640 ms: far beyond any ptime a lane is built for */

typedef void (*encoder_fn)(void *context, const int16_t *input_frame, uint8_t *bit_stream,
                           uint8_t *bit_stream_length);
typedef void (*decoder_fn)(void *context, const uint8_t *bit_stream, uint8_t bit_stream_length,
                           uint8_t frame_erasure_flag, uint8_t sid_frame_flag,
                           uint8_t rfc3389_payload_flag, int16_t *signal);

/* what both lanes hold: a bcg729 function and context, a G.711 table, and the owner of the
 * context (kept alive as long as the lane) */
typedef struct {
    PyObject_HEAD
    void *function;
    void *context;
    Py_buffer table;
    PyObject *owner;
    Py_ssize_t frames;
} Lane;

static int
lane_init(Lane *self, PyObject *args, Py_ssize_t table_items, Py_ssize_t item_size)
{
    PyObject *function, *context, *table, *owner;
    Py_ssize_t frames;
    if (!PyArg_ParseTuple(args, "OOOnO", &function, &context, &table, &frames, &owner))
        return -1;
    if (frames < 1 || frames > MAX_FRAMES) {
        PyErr_Format(PyExc_ValueError, "frames must be 1..%d, got %zd", MAX_FRAMES, frames);
        return -1;
    }
    void *function_address = PyLong_AsVoidPtr(function);
    void *context_address = PyLong_AsVoidPtr(context);
    if (PyErr_Occurred())
        return -1;
    if (!function_address || !context_address) {
        PyErr_SetString(PyExc_ValueError, "a null bcg729 function or context");
        return -1;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(table, &view, PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (view.itemsize != item_size || view.len != table_items * item_size) {
        PyErr_Format(PyExc_ValueError,
                     "the G.711 table must be %zd items of %zd bytes, got %zd bytes of %zd",
                     table_items, item_size, view.len, view.itemsize);
        PyBuffer_Release(&view);
        return -1;
    }
    if (self->table.obj)  /* __init__ called again */
        PyBuffer_Release(&self->table);
    self->table = view;
    Py_INCREF(owner);
    Py_XSETREF(self->owner, owner);
    self->function = function_address;
    self->context = context_address;
    self->frames = frames;
    return 0;
}

static int
lane_traverse(Lane *self, visitproc visit, void *arg)
{
    Py_VISIT(self->owner);
    Py_VISIT(self->table.obj);
    return 0;
}

static int
lane_clear(Lane *self)
{
    Py_CLEAR(self->owner);
    if (self->table.obj)
        PyBuffer_Release(&self->table);
    return 0;
}

static void
lane_dealloc(Lane *self)
{
    PyObject_GC_UnTrack(self);
    lane_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* packet(datagram, second_byte, sequence, timestamp, ssrc): the arguments shared by both
 * lanes; writes the outgoing header into a new bytes object of `size` bytes */
static PyObject *
new_datagram(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t in_size, Py_ssize_t size,
             const uint8_t **in)
{
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError,
                     "packet(datagram, second_byte, sequence, timestamp, ssrc) takes 5 "
                     "arguments, got %zd", nargs);
        return NULL;
    }
    if (!PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "the datagram must be bytes");
        return NULL;
    }
    if (PyBytes_GET_SIZE(args[0]) != in_size) {
        PyErr_Format(PyExc_ValueError, "the lane takes datagrams of %zd bytes, got %zd",
                     in_size, PyBytes_GET_SIZE(args[0]));
        return NULL;
    }
    static const unsigned long limits[4] = {0xFF, 0xFFFF, 0xFFFFFFFFUL, 0xFFFFFFFFUL};
    unsigned long fields[4];
    for (int i = 0; i < 4; i++) {
        fields[i] = PyLong_AsUnsignedLong(args[i + 1]);
        if (fields[i] == (unsigned long)-1 && PyErr_Occurred())
            return NULL;
        if (fields[i] > limits[i]) {
            PyErr_Format(PyExc_OverflowError, "RTP header field %d out of range: %lu",
                         i + 1, fields[i]);
            return NULL;
        }
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (!out)
        return NULL;
    uint8_t *header = (uint8_t *)PyBytes_AS_STRING(out);
    /* network byte order, RFC 3550 §5.1 */
    header[0] = 0x80;
    header[1] = (uint8_t)fields[0];
    header[2] = (uint8_t)(fields[1] >> 8);
    header[3] = (uint8_t)fields[1];
    for (int i = 0; i < 4; i++) {
        header[4 + i] = (uint8_t)(fields[2] >> (24 - 8 * i));
        header[8 + i] = (uint8_t)(fields[3] >> (24 - 8 * i));
    }
    *in = (const uint8_t *)PyBytes_AS_STRING(args[0]);
    return out;
}

/* -- G.711 -> G.729 -------------------------------------------------------------------- */

static int
encoder_lane_init(Lane *self, PyObject *args, PyObject *kwargs)
{
    if (kwargs && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "EncoderLane takes positional arguments only");
        return -1;
    }
    return lane_init(self, args, 256, sizeof(int16_t));
}

/* frames x 80 G.711 codes -> frames x 10 bytes of G.729 */
static void
encode_payload(Lane *self, const uint8_t *codes, uint8_t *bits)
{
    const int16_t *linear = (const int16_t *)self->table.buf; /* int16[256] by G.711 code */
    encoder_fn encode = (encoder_fn)self->function;
    int16_t frame[FRAME_SAMPLES];
    uint8_t length; /* 10: an encoder without VAD always gives a speech frame */
    for (Py_ssize_t f = 0; f < self->frames; f++) {
        for (int i = 0; i < FRAME_SAMPLES; i++)
            frame[i] = linear[codes[i]];
        encode(self->context, frame, bits, &length);
        codes += FRAME_SAMPLES;
        bits += SPEECH_FRAME_BYTES;
    }
}

static PyObject *
encoder_lane_packet(Lane *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!self->table.obj) {
        PyErr_SetString(PyExc_ValueError, "the lane was not initialised");
        return NULL;
    }
    const Py_ssize_t frames = self->frames;
    const uint8_t *in;
    PyObject *out = new_datagram(args, nargs, RTP_HEADER_SIZE + frames * FRAME_SAMPLES,
                                 RTP_HEADER_SIZE + frames * SPEECH_FRAME_BYTES, &in);
    if (!out)
        return NULL;
    encode_payload(self, in + RTP_HEADER_SIZE,
                   (uint8_t *)PyBytes_AS_STRING(out) + RTP_HEADER_SIZE);
    return out;
}

static PyMethodDef encoder_lane_methods[] = {
    {"packet", (PyCFunction)(void (*)(void))encoder_lane_packet, METH_FASTCALL,
     "packet(datagram, second_byte, sequence, timestamp, ssrc) -> bytes\n\n"
     "A G.711 datagram (12-byte header, frames x 80 codes) in, the G.729 datagram with the\n"
     "given header out (frames x 10 bytes)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EncoderLaneType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "vosapp.media.codecs._g729lane.EncoderLane",
    .tp_doc = "EncoderLane(bcg729Encoder address, encoder context address, int16[256] G.711 "
              "decode table, frames, owner)",
    .tp_basicsize = sizeof(Lane),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)encoder_lane_init,
    .tp_traverse = (traverseproc)lane_traverse,
    .tp_clear = (inquiry)lane_clear,
    .tp_dealloc = (destructor)lane_dealloc,
    .tp_methods = encoder_lane_methods,
};

/* -- G.729 -> G.711 -------------------------------------------------------------------- */

static int
decoder_lane_init(Lane *self, PyObject *args, PyObject *kwargs)
{
    if (kwargs && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "DecoderLane takes positional arguments only");
        return -1;
    }
    return lane_init(self, args, 65536, sizeof(uint8_t));
}

/* frames x 10 bytes of G.729 -> frames x 80 G.711 codes */
static void
decode_payload(Lane *self, const uint8_t *bits, uint8_t *codes)
{
    const uint8_t *code_of = (const uint8_t *)self->table.buf; /* uint8[65536] by sample */
    decoder_fn decode = (decoder_fn)self->function;
    int16_t frame[FRAME_SAMPLES];
    for (Py_ssize_t f = 0; f < self->frames; f++) {
        /* a speech frame: no erasure, no SID, no RFC 3389 comfort noise */
        decode(self->context, bits, SPEECH_FRAME_BYTES, 0, 0, 0, frame);
        for (int i = 0; i < FRAME_SAMPLES; i++)
            codes[i] = code_of[(uint16_t)frame[i]];
        bits += SPEECH_FRAME_BYTES;
        codes += FRAME_SAMPLES;
    }
}

static PyObject *
decoder_lane_packet(Lane *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!self->table.obj) {
        PyErr_SetString(PyExc_ValueError, "the lane was not initialised");
        return NULL;
    }
    const Py_ssize_t frames = self->frames;
    const uint8_t *in;
    PyObject *out = new_datagram(args, nargs, RTP_HEADER_SIZE + frames * SPEECH_FRAME_BYTES,
                                 RTP_HEADER_SIZE + frames * FRAME_SAMPLES, &in);
    if (!out)
        return NULL;
    decode_payload(self, in + RTP_HEADER_SIZE,
                   (uint8_t *)PyBytes_AS_STRING(out) + RTP_HEADER_SIZE);
    return out;
}

static PyMethodDef decoder_lane_methods[] = {
    {"packet", (PyCFunction)(void (*)(void))decoder_lane_packet, METH_FASTCALL,
     "packet(datagram, second_byte, sequence, timestamp, ssrc) -> bytes\n\n"
     "A G.729 datagram (12-byte header, frames x 10 bytes) in, the G.711 datagram with the\n"
     "given header out (frames x 80 codes)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject DecoderLaneType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "vosapp.media.codecs._g729lane.DecoderLane",
    .tp_doc = "DecoderLane(bcg729Decoder address, decoder context address, uint8[65536] G.711 "
              "encode table, frames, owner)",
    .tp_basicsize = sizeof(Lane),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)decoder_lane_init,
    .tp_traverse = (traverseproc)lane_traverse,
    .tp_clear = (inquiry)lane_clear,
    .tp_dealloc = (destructor)lane_dealloc,
    .tp_methods = decoder_lane_methods,
};

/* -- the C interface (_g729lane.h) ---------------------------------------------------- */

static int
api_sizes(PyObject *lane, Py_ssize_t *in_payload, Py_ssize_t *out_payload)
{
    int encoder = PyObject_TypeCheck(lane, &EncoderLaneType);
    if ((!encoder && !PyObject_TypeCheck(lane, &DecoderLaneType)) || !((Lane *)lane)->table.obj) {
        PyErr_SetString(PyExc_TypeError, "not an initialised EncoderLane or DecoderLane");
        return -1;
    }
    Py_ssize_t frames = ((Lane *)lane)->frames;
    *in_payload = frames * (encoder ? FRAME_SAMPLES : SPEECH_FRAME_BYTES);
    *out_payload = frames * (encoder ? SPEECH_FRAME_BYTES : FRAME_SAMPLES);
    return 0;
}

static void
api_convert(PyObject *lane, const uint8_t *in, uint8_t *out)
{
    if (Py_IS_TYPE(lane, &EncoderLaneType))
        encode_payload((Lane *)lane, in, out);
    else
        decode_payload((Lane *)lane, in, out);
}

static const G729LaneApi lane_api = {api_sizes, api_convert};

/* -- module ---------------------------------------------------------------------------- */

static struct PyModuleDef g729lane_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "vosapp.media.codecs._g729lane",
    .m_doc = "G.711 <-> G.729 RTP packet lanes over bcg729 functions given by address.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__g729lane(void)
{
    if (PyType_Ready(&EncoderLaneType) < 0 || PyType_Ready(&DecoderLaneType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&g729lane_module);
    if (!module)
        return NULL;
    Py_INCREF(&EncoderLaneType);
    if (PyModule_AddObject(module, "EncoderLane", (PyObject *)&EncoderLaneType) < 0) {
        Py_DECREF(&EncoderLaneType);
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&DecoderLaneType);
    if (PyModule_AddObject(module, "DecoderLane", (PyObject *)&DecoderLaneType) < 0) {
        Py_DECREF(&DecoderLaneType);
        Py_DECREF(module);
        return NULL;
    }
    PyObject *capsule = PyCapsule_New((void *)&lane_api, G729LANE_CAPSULE, NULL);
    if (!capsule || PyModule_AddObject(module, "_C_API", capsule) < 0) {
        Py_XDECREF(capsule);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
