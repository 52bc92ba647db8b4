/* The G.711 <-> G.729 packet lane's C interface for other extensions (vosapp.io._rtphub).
 *
 * _g729lane exports it as the capsule G729LANE_CAPSULE: a module that converts packets without
 * Python (the relay's hub) imports it with PyCapsule_Import and calls the lane of an
 * EncoderLane/DecoderLane object it holds a reference to, exactly as that object's packet()
 * converts the payload (same bcg729 context, same tables).
 */
#ifndef VOSAPP_G729LANE_H
#define VOSAPP_G729LANE_H

#include <Python.h>
#include <stdint.h>

#define G729LANE_CAPSULE "vosapp.media.codecs._g729lane._C_API"

typedef struct {
    /* The payload sizes of a lane object in bytes (in: what a datagram carries after its
     * 12-byte header; out: what the converted datagram carries); -1 with TypeError when the
     * object is not an initialised lane. */
    int (*sizes)(PyObject *lane, Py_ssize_t *in_payload, Py_ssize_t *out_payload);
    /* Convert one packet's payload: `in` holds in_payload bytes, `out` has room for
     * out_payload. No Python object is touched (the caller holds the lane alive). */
    void (*convert)(PyObject *lane, const uint8_t *in, uint8_t *out);
} G729LaneApi;

#endif
