/* The relay's native forwarding path: many RTP sockets behind one epoll fd.
 *
 * vosapp.io.rtp_relay registers the hub's epoll fd with asyncio as one reader. A relay socket
 * may carry a route: the sans-IO core's short path (RelayCore.short_route), i.e. the latched
 * IPv4 source, the leg's media payload type, an optional payload-type rewrite, the socket to
 * send from and the peer. Hub.poll() reads each ready routed socket here and forwards, without
 * Python, every datagram the core's short path would forward (RelayCore.receive_batch: a plain
 * RTP version 2 header, the media payload type, the latched source). The first datagram that
 * does not fit ends that socket's turn and goes back to Python with what was forwarded before
 * it; a socket without a route is only reported as readable.
 *
 * Counters are those of the Python path (rtp_relay._transmit_bursts): a send failing with
 * EAGAIN is a drop (stale audio is not queued), any other failure an error. Statistics, two
 * ways per socket:
 * - reported: the forwarded RTP headers go back to Python, which accounts them with
 *   RtpStreamStats.update_many (RFC 3550 A.1/A.8) at the poll's arrival time;
 * - owned (own_stats): the hub holds the part of the RFC 3550 state an in-order packet changes
 *   (A.1 next sequence number and cycles, A.8 last timestamp, arrival and jitter) and does
 *   that packet's accounting itself, with the same double arithmetic as rtp.py, so nothing
 *   per packet reaches Python; any other sequence number ends the turn like a datagram that
 *   does not fit. take_stats() hands the state and the counts back.
 *
 * A transcoded leg (a route with a G.711 <-> G.729 lane, RelayCore.short_route): the hub
 * converts instead of forwarding, while it owns the leg's transcoder state (own_lane ..
 * take_lane): the next sequence number the transcoder expects, the last source timestamp,
 * the marker of the next outgoing packet and the outgoing numbering (RFC 3550 §5.1). A
 * datagram fits when it is the transcoder's common case (Transcoder.process's lane: a plain
 * header, exactly the lane's size, the expected sequence number, no timestamp jump); the hub
 * then builds the outgoing datagram as OutgoingStream.packet does, with the payload converted
 * by _g729lane's C interface (_g729lane.h, the same bcg729 context as Python's lane), and
 * keeps the last G.711 datagram for the source's concealment (G711.heard). Anything else
 * ends the turn; take_lane() hands the state back before Python sees it.
 *
 * One poll works in stages over all its ready sockets: every socket's turn reads and checks
 * its datagrams first (the state above advances then, in arrival order), then the datagrams
 * kept are converted back to back (the encodes, then the decodes), then all are sent in the
 * order read (issue #14 part 2; measured with the paced polls of rtp_relay._LoopHub: the
 * two together +5 % transcoded calls per CPU, the staging alone within noise, bcg729's own
 * cost unchanged -- docs/benchmarks.md, "Staged and paced hub polls"). A socket's
 * datagrams go out in arrival order as before, each before Python sees anything of the poll;
 * only the order of sends across sockets changes, and a datagram waits at most for the
 * poll's reads and conversions (capped: `batch` datagrams, then the stages run for those
 * and reading goes on).
 *
 * Nothing here blocks (MSG_DONTWAIT, epoll_wait with timeout 0) and the work per poll is
 * capped (max_events sockets, drain_batch datagrams each).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../media/codecs/_g729lane.h"

#define RTP_HEADER_SIZE 12
#define DATAGRAM_MAX 2048 /* what the Python path reads: recvfrom(2048) */
#define MAX_EVENTS_CAP 4096
#define BATCH_CAP 4096
/* where a poll keeps the datagrams it has read and not yet sent: a datagram takes what it
 * holds (rounded to 16 bytes), a read needs DATAGRAM_MAX free, a conversion its output */
#define ARENA_SIZE (256 * 1024)
#define ARENA_ALIGN(n) (((size_t)(n) + 15) & ~(size_t)15)

typedef struct {
    int fd;
    PyObject *key;
    int routed;
    struct sockaddr_in source; /* the latched source (RFC 4961) */
    int media_pt;
    int rewrite_pt; /* -1: forward the payload type as received */
    int out_fd;
    struct sockaddr_in peer;
    double last_wake; /* the backlog policy of rtp_relay._drain */
    /* owned statistics (own_stats .. take_stats) */
    int owns_stats;
    long next_seq;      /* A.1: the sequence number an in-order packet carries */
    long long cycles;   /* A.1: 65536 per wrap of the sequence number */
    uint32_t last_timestamp;
    double last_arrival;
    double jitter;      /* A.8, timestamp units */
    double clock_rate;
    long long received, rx_packets, rx_bytes; /* since own_stats, on this leg */
    long long tx_packets, tx_bytes, tx_dropped, tx_errors; /* of the sends from out_fd */
    /* a transcoded leg: the lane (NULL: forward), its payload sizes, owned state */
    PyObject *lane;
    Py_ssize_t lane_in, lane_out;
    int owns_lane;
    long expected_seq;        /* the transcoder's next expected sequence number */
    uint32_t last_src_ts;     /* its last source timestamp */
    uint32_t step_limit;      /* a timestamp step above this (and < 2^31) is a jump */
    int marker_next;          /* RFC 3551 §4.1: the next outgoing packet starts a talkspurt */
    int out_pt;
    uint16_t out_seq;
    uint32_t out_ts, out_ssrc, out_ticks;
    int keeps_heard;          /* the source is G.711: keep its last datagram (G711.heard) */
    long long converted;      /* since own_lane */
    uint8_t *heard;           /* allocated by own_lane when it keeps one */
    Py_ssize_t heard_size, heard_capacity;
} Entry;

static const G729LaneApi *lane_api; /* imported from _g729lane on the first lane route */

typedef struct {
    PyObject_HEAD
    int epfd;
    Entry **entries; /* indexed by fd */
    Py_ssize_t capacity;
    Py_ssize_t count;
    double backlog_gap;
    int drain_batch;
    int max_events;
    struct epoll_event *events;
    /* one poll's work in stages (hub_poll): a turn per ready socket, the datagrams read and
     * not yet sent in the arena, in the order read */
    struct Turn *turns;
    struct Pending *pending;
    int batch, pending_count;
    uint8_t *arena;
    size_t arena_used;
    int last_ready; /* the sockets the last poll found ready */
} Hub;

/* One ready socket's part of a poll: what its report to Python will say. */
typedef struct Turn {
    Entry *entry;
    int routed; /* 0: the socket is only reported as readable */
    PyObject *headers, *other;
    long long rx_packets, rx_bytes;
    long long tx_packets, tx_bytes, tx_dropped, tx_errors;
} Turn;

/* A datagram read and checked, to be converted (lane) and sent from its turn's route. */
typedef struct Pending {
    Turn *turn;
    uint8_t *in;  /* as received (its payload type rewritten if the route says so) */
    uint8_t *out; /* what goes out: `in`, or the converted datagram (its header built) */
    size_t size;  /* of `out` */
} Pending;

static void
entry_free(Entry *entry)
{
    Py_XDECREF(entry->key);
    Py_XDECREF(entry->lane);
    PyMem_Free(entry->heard);
    PyMem_Free(entry);
}

static int
hub_check_open(Hub *self)
{
    if (self->epfd < 0) {
        PyErr_SetString(PyExc_ValueError, "hub is closed");
        return -1;
    }
    return 0;
}

/* The entry of a watched socket, or NULL with ValueError (hub closed) or KeyError. */
static Entry *
hub_entry(Hub *self, int fd)
{
    if (hub_check_open(self) < 0)
        return NULL;
    if (fd < 0 || fd >= self->capacity || self->entries[fd] == NULL) {
        PyErr_Format(PyExc_KeyError, "fd %d is not in the hub", fd);
        return NULL;
    }
    return self->entries[fd];
}

/* The entry of the socket whose fd is the one argument of a METH_O method. */
static Entry *
hub_entry_arg(Hub *self, PyObject *arg, int *fd)
{
    if (!PyArg_Parse(arg, "i", fd))
        return NULL;
    return hub_entry(self, *fd);
}

static int
hub_init(Hub *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"backlog_gap", "drain_batch", "max_events", "batch", NULL};
    double backlog_gap = 0.001;
    int drain_batch = 256, max_events = 256, batch = 1024;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|diii", kwlist, &backlog_gap, &drain_batch,
                                     &max_events, &batch))
        return -1;
    if (drain_batch < 1 || max_events < 1 || max_events > MAX_EVENTS_CAP || batch < 1 ||
        batch > BATCH_CAP) {
        PyErr_SetString(PyExc_ValueError,
                        "drain_batch >= 1, 1 <= max_events <= 4096 and 1 <= batch <= 4096");
        return -1;
    }
    if (self->epfd >= 0) {
        PyErr_SetString(PyExc_RuntimeError, "hub already initialised");
        return -1;
    }
    /* a failed __init__ called again */
    PyMem_Free(self->events);
    PyMem_Free(self->turns);
    PyMem_Free(self->pending);
    PyMem_Free(self->arena);
    self->events = PyMem_Calloc((size_t)max_events, sizeof(struct epoll_event));
    self->turns = PyMem_Calloc((size_t)max_events, sizeof(Turn));
    self->pending = PyMem_Calloc((size_t)batch, sizeof(Pending));
    self->arena = PyMem_Malloc(ARENA_SIZE);
    if (self->events == NULL || self->turns == NULL || self->pending == NULL ||
        self->arena == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (self->epfd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    self->backlog_gap = backlog_gap;
    self->drain_batch = drain_batch;
    self->max_events = max_events;
    self->batch = batch;
    return 0;
}

static PyObject *
hub_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Hub *self = (Hub *)type->tp_alloc(type, 0);
    if (self != NULL)
        self->epfd = -1;
    return (PyObject *)self;
}

static void
hub_release(Hub *self)
{
    for (Py_ssize_t fd = 0; fd < self->capacity; fd++) {
        Entry *entry = self->entries[fd];
        if (entry != NULL) {
            self->entries[fd] = NULL;
            entry_free(entry);
        }
    }
    self->count = 0;
    if (self->epfd >= 0) {
        close(self->epfd);
        self->epfd = -1;
    }
}

static int
hub_traverse(Hub *self, visitproc visit, void *arg)
{
    for (Py_ssize_t fd = 0; fd < self->capacity; fd++)
        if (self->entries[fd] != NULL) {
            Py_VISIT(self->entries[fd]->key);
            Py_VISIT(self->entries[fd]->lane);
        }
    return 0;
}

static int
hub_clear(Hub *self)
{
    for (Py_ssize_t fd = 0; fd < self->capacity; fd++)
        if (self->entries[fd] != NULL) {
            Py_CLEAR(self->entries[fd]->key);
            Py_CLEAR(self->entries[fd]->lane);
            self->entries[fd]->owns_lane = 0;
            self->entries[fd]->routed = 0; /* never forward a transcoded leg untranscoded */
        }
    return 0;
}

static void
hub_dealloc(Hub *self)
{
    PyObject_GC_UnTrack(self);
    for (Py_ssize_t fd = 0; fd < self->capacity; fd++) {
        Entry *entry = self->entries[fd];
        if (entry != NULL)
            entry_free(entry);
    }
    if (self->epfd >= 0)
        close(self->epfd);
    PyMem_Free(self->entries);
    PyMem_Free(self->events);
    PyMem_Free(self->turns);
    PyMem_Free(self->pending);
    PyMem_Free(self->arena);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
hub_fileno(Hub *self, PyObject *unused)
{
    if (hub_check_open(self) < 0)
        return NULL;
    return PyLong_FromLong(self->epfd);
}

static PyObject *
hub_close(Hub *self, PyObject *unused)
{
    hub_release(self);
    Py_RETURN_NONE;
}

static PyObject *
hub_add(Hub *self, PyObject *args)
{
    int fd;
    PyObject *key;
    if (!PyArg_ParseTuple(args, "iO:add", &fd, &key))
        return NULL;
    if (hub_check_open(self) < 0)
        return NULL;
    if (fd < 0) {
        PyErr_SetString(PyExc_ValueError, "negative fd");
        return NULL;
    }
    if (fd < self->capacity && self->entries[fd] != NULL) {
        PyErr_Format(PyExc_KeyError, "fd %d is already in the hub", fd);
        return NULL;
    }
    if (fd >= self->capacity) {
        Py_ssize_t capacity = self->capacity ? self->capacity : 64;
        while (capacity <= fd)
            capacity *= 2;
        Entry **grown = PyMem_Realloc(self->entries, (size_t)capacity * sizeof(Entry *));
        if (grown == NULL)
            return PyErr_NoMemory();
        memset(grown + self->capacity, 0, (size_t)(capacity - self->capacity) * sizeof(Entry *));
        self->entries = grown;
        self->capacity = capacity;
    }
    Entry *entry = PyMem_Calloc(1, sizeof(Entry));
    if (entry == NULL)
        return PyErr_NoMemory();
    entry->fd = fd;
    entry->last_wake = -1.0;
    entry->rewrite_pt = -1;
    entry->out_fd = -1;
    struct epoll_event event;
    memset(&event, 0, sizeof(event));
    event.events = EPOLLIN; /* level-triggered: what a turn leaves behind wakes us again */
    event.data.fd = fd;
    if (epoll_ctl(self->epfd, EPOLL_CTL_ADD, fd, &event) < 0) {
        PyMem_Free(entry);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_INCREF(key);
    entry->key = key;
    self->entries[fd] = entry;
    self->count++;
    Py_RETURN_NONE;
}

static PyObject *
hub_remove(Hub *self, PyObject *arg)
{
    int fd;
    Entry *entry = hub_entry_arg(self, arg, &fd);
    if (entry == NULL)
        return NULL;
    self->entries[fd] = NULL;
    self->count--;
    entry_free(entry);
    /* EBADF/ENOENT: the socket was closed first, the kernel already forgot it */
    if (epoll_ctl(self->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != EBADF && errno != ENOENT)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static int
parse_ipv4(const char *host, int port, struct sockaddr_in *out)
{
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    if (port < 0 || port > 65535 || inet_pton(AF_INET, host, &out->sin_addr) != 1) {
        PyErr_Format(PyExc_ValueError, "not an IPv4 address: %s port %d", host, port);
        return -1;
    }
    out->sin_port = htons((uint16_t)port);
    return 0;
}

static PyObject *
hub_set_route(Hub *self, PyObject *args)
{
    int fd, source_port, media_pt, rewrite_pt, out_fd, peer_port;
    const char *source_host, *peer_host;
    PyObject *lane = Py_None;
    if (!PyArg_ParseTuple(args, "isiiiisi|O:set_route", &fd, &source_host, &source_port,
                          &media_pt, &rewrite_pt, &out_fd, &peer_host, &peer_port, &lane))
        return NULL;
    Entry *entry = hub_entry(self, fd);
    if (entry == NULL)
        return NULL;
    if (entry->owns_lane) {
        PyErr_SetString(PyExc_RuntimeError, "take_lane() before changing the route");
        return NULL;
    }
    Py_ssize_t lane_in = 0, lane_out = 0;
    if (lane != Py_None) {
        if (lane_api == NULL) {
            lane_api = (const G729LaneApi *)PyCapsule_Import(G729LANE_CAPSULE, 0);
            if (lane_api == NULL)
                return NULL;
        }
        if (lane_api->sizes(lane, &lane_in, &lane_out) < 0)
            return NULL;
        if (RTP_HEADER_SIZE + lane_in > DATAGRAM_MAX || RTP_HEADER_SIZE + lane_out > DATAGRAM_MAX) {
            PyErr_SetString(PyExc_ValueError, "the lane's datagrams exceed 2048 bytes");
            return NULL;
        }
    }
    if (media_pt < 0 || media_pt > 127 || rewrite_pt < -1 || rewrite_pt > 127 || out_fd < 0) {
        PyErr_SetString(PyExc_ValueError, "payload types are 0..127 (rewrite -1: none)");
        return NULL;
    }
    struct sockaddr_in source, peer;
    if (parse_ipv4(source_host, source_port, &source) < 0 ||
        parse_ipv4(peer_host, peer_port, &peer) < 0)
        return NULL;
    entry->source = source;
    entry->peer = peer;
    entry->media_pt = media_pt;
    entry->rewrite_pt = rewrite_pt;
    entry->out_fd = out_fd;
    entry->routed = 1;
    Py_XINCREF(lane != Py_None ? lane : NULL);
    Py_XSETREF(entry->lane, lane != Py_None ? lane : NULL);
    entry->lane_in = lane_in;
    entry->lane_out = lane_out;
    Py_RETURN_NONE;
}

static PyObject *
hub_clear_route(Hub *self, PyObject *arg)
{
    int fd;
    Entry *entry = hub_entry_arg(self, arg, &fd);
    if (entry == NULL)
        return NULL;
    if (entry->owns_stats || entry->owns_lane) {
        PyErr_SetString(PyExc_RuntimeError, "take_stats()/take_lane() before clearing the route");
        return NULL;
    }
    entry->routed = 0;
    entry->out_fd = -1;
    Py_CLEAR(entry->lane);
    Py_RETURN_NONE;
}

static PyObject *
hub_own_stats(Hub *self, PyObject *args)
{
    int fd;
    long next_seq;
    long long cycles;
    unsigned long last_timestamp;
    double last_arrival, jitter, clock_rate;
    if (!PyArg_ParseTuple(args, "ilLkddd:own_stats", &fd, &next_seq, &cycles, &last_timestamp,
                          &last_arrival, &jitter, &clock_rate))
        return NULL;
    Entry *entry = hub_entry(self, fd);
    if (entry == NULL)
        return NULL;
    if (!entry->routed || entry->owns_stats) {
        PyErr_SetString(PyExc_RuntimeError, "own_stats() needs a route and no owned stats");
        return NULL;
    }
    if (next_seq < 0 || next_seq > 0xFFFF || last_timestamp > 0xFFFFFFFFUL || clock_rate <= 0) {
        PyErr_SetString(PyExc_ValueError, "sequence 0..65535, timestamp 32 bits, rate > 0");
        return NULL;
    }
    entry->next_seq = next_seq;
    entry->cycles = cycles;
    entry->last_timestamp = (uint32_t)last_timestamp;
    entry->last_arrival = last_arrival;
    entry->jitter = jitter;
    entry->clock_rate = clock_rate;
    entry->received = entry->rx_packets = entry->rx_bytes = 0;
    entry->tx_packets = entry->tx_bytes = entry->tx_dropped = entry->tx_errors = 0;
    entry->owns_stats = 1;
    Py_RETURN_NONE;
}

static PyObject *
hub_take_stats(Hub *self, PyObject *arg)
{
    int fd;
    Entry *entry = hub_entry_arg(self, arg, &fd);
    if (entry == NULL)
        return NULL;
    if (!entry->owns_stats)
        Py_RETURN_NONE;
    entry->owns_stats = 0;
    return Py_BuildValue("(LLLlLkddLLLL)", entry->rx_packets, entry->rx_bytes, entry->received,
                         entry->next_seq, entry->cycles, (unsigned long)entry->last_timestamp,
                         entry->last_arrival, entry->jitter, entry->tx_packets, entry->tx_bytes,
                         entry->tx_dropped, entry->tx_errors);
}

static PyObject *
hub_own_lane(Hub *self, PyObject *args)
{
    int fd, marker_next, out_pt, keeps_heard;
    long expected_seq;
    unsigned long last_src_ts, step_limit, out_seq, out_ts, out_ssrc, out_ticks;
    if (!PyArg_ParseTuple(args, "ilkkpikkkkp:own_lane", &fd, &expected_seq, &last_src_ts,
                          &step_limit, &marker_next, &out_pt, &out_seq, &out_ts, &out_ssrc,
                          &out_ticks, &keeps_heard))
        return NULL;
    Entry *entry = hub_entry(self, fd);
    if (entry == NULL)
        return NULL;
    if (!entry->routed || entry->lane == NULL || entry->owns_lane) {
        PyErr_SetString(PyExc_RuntimeError, "own_lane() needs a lane route and no owned lane");
        return NULL;
    }
    if (expected_seq < 0 || expected_seq > 0xFFFF || out_seq > 0xFFFF || out_pt < 0 ||
        out_pt > 127 || last_src_ts > 0xFFFFFFFFUL || step_limit > 0xFFFFFFFFUL ||
        out_ts > 0xFFFFFFFFUL || out_ssrc > 0xFFFFFFFFUL || out_ticks > 0xFFFFFFFFUL) {
        PyErr_SetString(PyExc_ValueError, "RTP field out of range");
        return NULL;
    }
    Py_ssize_t datagram = RTP_HEADER_SIZE + entry->lane_in;
    if (keeps_heard && entry->heard_capacity < datagram) {
        uint8_t *heard = PyMem_Realloc(entry->heard, (size_t)datagram);
        if (heard == NULL)
            return PyErr_NoMemory();
        entry->heard = heard;
        entry->heard_capacity = datagram;
    }
    entry->expected_seq = expected_seq;
    entry->last_src_ts = (uint32_t)last_src_ts;
    entry->step_limit = (uint32_t)step_limit;
    entry->marker_next = marker_next;
    entry->out_pt = out_pt;
    entry->out_seq = (uint16_t)out_seq;
    entry->out_ts = (uint32_t)out_ts;
    entry->out_ssrc = (uint32_t)out_ssrc;
    entry->out_ticks = (uint32_t)out_ticks;
    entry->keeps_heard = keeps_heard;
    entry->converted = 0;
    entry->heard_size = 0;
    entry->owns_lane = 1;
    Py_RETURN_NONE;
}

static PyObject *
hub_take_lane(Hub *self, PyObject *arg)
{
    int fd;
    Entry *entry = hub_entry_arg(self, arg, &fd);
    if (entry == NULL)
        return NULL;
    if (!entry->owns_lane)
        Py_RETURN_NONE;
    entry->owns_lane = 0;
    PyObject *heard;
    if (entry->heard_size > 0)
        heard = PyBytes_FromStringAndSize((const char *)entry->heard, entry->heard_size);
    else
        heard = Py_NewRef(Py_None);
    if (heard == NULL)
        return NULL;
    return Py_BuildValue("(LlkOkkN)", entry->converted, entry->expected_seq,
                         (unsigned long)entry->last_src_ts, entry->marker_next ? Py_True : Py_False,
                         (unsigned long)entry->out_seq, (unsigned long)entry->out_ts, heard);
}

/* A datagram handed back to Python: (bytes, (host, port)). */
static PyObject *
datagram_tuple(const uint8_t *data, ssize_t size, const struct sockaddr_in *from)
{
    char host[INET_ADDRSTRLEN];
    if (inet_ntop(AF_INET, &from->sin_addr, host, sizeof(host)) == NULL)
        return PyErr_SetFromErrno(PyExc_OSError);
    return Py_BuildValue("(y#(si))", (const char *)data, (Py_ssize_t)size, host,
                         (int)ntohs(from->sin_port));
}

/* The poll's datagrams read so far: all conversions back to back, then all sends in the
 * order read, each counted in its turn (the counters of rtp_relay._transmit_bursts: EAGAIN
 * is a drop, stale audio is not queued; any other failure an error). The arena is free
 * again after. */
static void
hub_flush(Hub *self)
{
    Pending *pending = self->pending;
    int count = self->pending_count;
    /* the encodes (G.711 in, more bytes than out), then the decodes: each half of bcg729
     * back to back on its own tables; a lane's packets keep their order, all of one kind */
    for (int encodes = 1; encodes >= 0; encodes--)
        for (int i = 0; i < count; i++) {
            Entry *entry = pending[i].turn->entry;
            if (pending[i].out != pending[i].in &&
                (entry->lane_in > entry->lane_out) == encodes)
                lane_api->convert(entry->lane, pending[i].in + RTP_HEADER_SIZE,
                                  pending[i].out + RTP_HEADER_SIZE);
        }
    for (int i = 0; i < count; i++) {
        Turn *turn = pending[i].turn;
        Entry *entry = turn->entry;
        ssize_t sent;
        do {
            sent = sendto(entry->out_fd, pending[i].out, pending[i].size, MSG_DONTWAIT,
                          (const struct sockaddr *)&entry->peer, sizeof(entry->peer));
        } while (sent < 0 && errno == EINTR);
        if (sent >= 0) {
            turn->tx_packets++;
            turn->tx_bytes += (long long)pending[i].size;
        }
        /* the errno values Python raises BlockingIOError for: a full send buffer */
        else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EALREADY ||
                 errno == EINPROGRESS)
            turn->tx_dropped++;
        else
            turn->tx_errors++;
    }
    self->pending_count = 0;
    self->arena_used = 0;
}

/* One routed socket's turn, its reads: each datagram that fits is accounted (owned
 * statistics, transcoder state) or its header kept for Python, and queued for hub_flush;
 * the first that does not fit ends the turn as turn->other. -1 with an exception. */
static int
hub_turn(Hub *self, Turn *turn, double now)
{
    Entry *entry = turn->entry;
    int reads = now - entry->last_wake < self->backlog_gap ? self->drain_batch : 1;
    entry->last_wake = now;
    size_t out_room = entry->lane != NULL ? ARENA_ALIGN(RTP_HEADER_SIZE + entry->lane_out) : 0;
    for (int i = 0; i < reads; i++) {
        if (self->pending_count == self->batch ||
            self->arena_used + DATAGRAM_MAX + out_room > ARENA_SIZE)
            hub_flush(self);
        uint8_t *buffer = self->arena + self->arena_used;
        struct sockaddr_storage from;
        socklen_t fromlen = sizeof(from);
        ssize_t size;
        do {
            size = recvfrom(entry->fd, buffer, DATAGRAM_MAX, MSG_DONTWAIT,
                            (struct sockaddr *)&from, &fromlen);
        } while (size < 0 && errno == EINTR);
        if (size < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            continue; /* e.g. ICMP port unreachable reported on the socket: skipped */
        }
        const struct sockaddr_in *source = (const struct sockaddr_in *)&from;
        /* RelayCore.receive_batch's short path: a plain RTP version 2 header (no padding,
         * extension or CSRC, RFC 3550 §5.1), the leg's media payload type, the latched
         * source; anything else is the core's to decide */
        if (size < RTP_HEADER_SIZE || buffer[0] != 0x80 ||
            (buffer[1] & 0x7F) != entry->media_pt || from.ss_family != AF_INET ||
            source->sin_addr.s_addr != entry->source.sin_addr.s_addr ||
            source->sin_port != entry->source.sin_port) {
            if (from.ss_family != AF_INET) {
                PyErr_SetString(PyExc_OSError, "non-IPv4 datagram on a routed socket");
                return -1;
            }
            turn->other = datagram_tuple(buffer, size, source);
            return turn->other == NULL ? -1 : 0;
        }
        uint16_t sequence = (uint16_t)(buffer[2] << 8 | buffer[3]);
        uint32_t timestamp = (uint32_t)buffer[4] << 24 | (uint32_t)buffer[5] << 16 |
                             (uint32_t)buffer[6] << 8 | (uint32_t)buffer[7];
        /* a transcoded leg: only Transcoder.process's lane case is done here (a datagram of
         * the lane's size, the sequence number it expects, no timestamp jump: DTX, hold);
         * concealment, resynchronisation, other sizes are the transcoder's */
        if (entry->lane != NULL) {
            uint32_t step = timestamp - entry->last_src_ts;
            if (!entry->owns_lane || size != RTP_HEADER_SIZE + entry->lane_in ||
                sequence != entry->expected_seq ||
                (step > entry->step_limit && step < 0x80000000u)) {
                turn->other = datagram_tuple(buffer, size, source);
                return turn->other == NULL ? -1 : 0;
            }
        }
        if (entry->owns_stats) {
            if (sequence != entry->next_seq) { /* gap, late, duplicate, restart: A.1 in Python */
                turn->other = datagram_tuple(buffer, size, source);
                return turn->other == NULL ? -1 : 0;
            }
            /* RtpStreamStats.update's in-order case: A.1, then A.8 with
             * D = (R_i - R_(i-1)) * rate - (S_i - S_(i-1)), the timestamp step signed mod 2^32 */
            entry->received++;
            entry->next_seq = (sequence + 1) & 0xFFFF;
            if (sequence == 0)
                entry->cycles += 65536;
            uint32_t step = timestamp - entry->last_timestamp;
            double ts_delta = step >= 0x80000000u ? (double)step - 4294967296.0 : (double)step;
            double d = (now - entry->last_arrival) * entry->clock_rate - ts_delta;
            entry->jitter = entry->jitter + ((d >= 0 ? d : -d) - entry->jitter) * 0.0625;
            entry->last_timestamp = timestamp;
            entry->last_arrival = now;
        } else {
            if (turn->headers == NULL && (turn->headers = PyList_New(0)) == NULL)
                return -1;
            PyObject *header = Py_BuildValue("(iiik)", buffer[0], buffer[1],
                                             (unsigned int)sequence, (unsigned long)timestamp);
            if (header == NULL)
                return -1;
            int appended = PyList_Append(turn->headers, header);
            Py_DECREF(header);
            if (appended < 0)
                return -1;
        }
        turn->rx_packets++;
        turn->rx_bytes += size;
        Pending *pending = &self->pending[self->pending_count++];
        pending->turn = turn;
        pending->in = pending->out = buffer;
        pending->size = (size_t)size;
        self->arena_used += ARENA_ALIGN(size);
        if (entry->lane != NULL) {
            /* OutgoingStream.packet: v2 header of the leg's numbering, then the payload
             * (converted by hub_flush) */
            uint8_t *converted = pending->out = self->arena + self->arena_used;
            self->arena_used += out_room;
            converted[0] = 0x80;
            converted[1] = (uint8_t)((entry->marker_next ? 0x80 : 0) | entry->out_pt);
            converted[2] = (uint8_t)(entry->out_seq >> 8);
            converted[3] = (uint8_t)entry->out_seq;
            for (int b = 0; b < 4; b++) {
                converted[4 + b] = (uint8_t)(entry->out_ts >> (24 - 8 * b));
                converted[8 + b] = (uint8_t)(entry->out_ssrc >> (24 - 8 * b));
            }
            if (entry->keeps_heard) { /* G711.heard: the concealment of a later loss (the
                                       * datagram is the lane's size, own_lane made room) */
                memcpy(entry->heard, buffer, (size_t)size);
                entry->heard_size = size;
            }
            entry->expected_seq = (sequence + 1) & 0xFFFF;
            entry->last_src_ts = timestamp;
            entry->marker_next = 0;
            entry->out_seq++;
            entry->out_ts += entry->out_ticks;
            entry->converted++;
            pending->size = (size_t)(RTP_HEADER_SIZE + entry->lane_out);
        } else if (entry->rewrite_pt >= 0)
            buffer[1] = (uint8_t)((buffer[1] & 0x80) | entry->rewrite_pt);
    }
    return 0;
}

/* A routed turn whose socket's statistics the hub owns: its counts go to the entry (and
 * none to the report). */
static void
turn_account(Turn *turn)
{
    Entry *entry = turn->entry;
    if (!turn->routed || !entry->owns_stats)
        return;
    entry->rx_packets += turn->rx_packets;
    entry->rx_bytes += turn->rx_bytes;
    entry->tx_packets += turn->tx_packets;
    entry->tx_bytes += turn->tx_bytes;
    entry->tx_dropped += turn->tx_dropped;
    entry->tx_errors += turn->tx_errors;
    turn->rx_packets = turn->rx_bytes = turn->tx_packets = turn->tx_bytes = 0;
    turn->tx_dropped = turn->tx_errors = 0;
}

/* A turn's report to Python (a new reference), Py_None (new reference) when nothing
 * happened, NULL with an exception. Owned statistics take the turn's counts instead. */
static PyObject *
turn_report(Turn *turn)
{
    Entry *entry = turn->entry;
    if (!turn->routed)
        return Py_BuildValue("(OOiiiiiO)", entry->key, Py_None, 0, 0, 0, 0, 0, Py_None);
    turn_account(turn);
    if (turn->headers == NULL && turn->other == NULL)
        Py_RETURN_NONE;
    if (turn->headers == NULL && (turn->headers = PyList_New(0)) == NULL)
        return NULL;
    return Py_BuildValue("(OOLLLLLO)", entry->key, turn->headers, turn->rx_bytes,
                         turn->tx_packets, turn->tx_bytes, turn->tx_dropped, turn->tx_errors,
                         turn->other != NULL ? turn->other : Py_None);
}

static PyObject *
hub_poll(Hub *self, PyObject *arg)
{
    double now = PyFloat_AsDouble(arg);
    if (now == -1.0 && PyErr_Occurred())
        return NULL;
    if (hub_check_open(self) < 0)
        return NULL;
    int ready;
    do {
        ready = epoll_wait(self->epfd, self->events, self->max_events, 0);
    } while (ready < 0 && errno == EINTR);
    if (ready < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    self->last_ready = ready;
    /* stage one: every ready socket's reads; a turn that fails (no memory) still sends what
     * was read before it, its state has advanced */
    Turn *turns = self->turns;
    int turn_count = 0, failed = 0;
    for (int i = 0; i < ready && !failed; i++) {
        int fd = self->events[i].data.fd;
        if (fd < 0 || fd >= self->capacity || self->entries[fd] == NULL)
            continue; /* removed since (cannot happen within one poll, kept for safety) */
        Entry *entry = self->entries[fd];
        Turn *turn = &turns[turn_count++];
        memset(turn, 0, sizeof(*turn));
        turn->entry = entry;
        turn->routed = entry->routed;
        if (turn->routed)
            failed = hub_turn(self, turn, now) < 0;
    }
    /* stages two and three: the conversions, then the sends */
    hub_flush(self);
    PyObject *reports = failed ? NULL : PyList_New(0);
    for (int i = 0; i < turn_count; i++) {
        Turn *turn = &turns[i];
        PyObject *report = NULL;
        if (reports != NULL) {
            report = turn_report(turn);
            if (report == NULL || (report != Py_None && PyList_Append(reports, report) < 0))
                Py_CLEAR(reports);
            Py_XDECREF(report);
        } else {
            turn_account(turn); /* failing: what was sent still counts in owned statistics */
        }
        Py_CLEAR(turn->headers);
        Py_CLEAR(turn->other);
    }
    return reports;
}

static Py_ssize_t
hub_len(Hub *self)
{
    return self->count;
}

static PyMethodDef hub_methods[] = {
    {"fileno", (PyCFunction)hub_fileno, METH_NOARGS, "The epoll fd (one asyncio reader)."},
    {"close", (PyCFunction)hub_close, METH_NOARGS, "Forget every socket and close the epoll fd."},
    {"add", (PyCFunction)hub_add, METH_VARARGS, "add(fd, key): watch a socket, reported as key."},
    {"remove", (PyCFunction)hub_remove, METH_O, "remove(fd): stop watching a socket."},
    {"set_route", (PyCFunction)hub_set_route, METH_VARARGS,
     "set_route(fd, source_host, source_port, media_pt, rewrite_pt, out_fd, peer_host, "
     "peer_port, lane=None): forward fitting datagrams in C (rewrite_pt -1: none); with a "
     "_g729lane lane, convert them while own_lane() holds."},
    {"clear_route", (PyCFunction)hub_clear_route, METH_O,
     "clear_route(fd): report the socket as readable instead."},
    {"own_stats", (PyCFunction)hub_own_stats, METH_VARARGS,
     "own_stats(fd, next_seq, cycles, last_timestamp, last_arrival, jitter, clock_rate): "
     "account in-order packets of a routed socket here (RFC 3550 A.1/A.8)."},
    {"take_stats", (PyCFunction)hub_take_stats, METH_O,
     "take_stats(fd): None, or (rx_packets, rx_bytes, received, next_seq, cycles, "
     "last_timestamp, last_arrival, jitter, tx_packets, tx_bytes, tx_dropped, tx_errors) "
     "since own_stats(), which ends."},
    {"own_lane", (PyCFunction)hub_own_lane, METH_VARARGS,
     "own_lane(fd, expected_seq, last_src_ts, step_limit, marker_next, out_pt, out_seq, out_ts, "
     "out_ssrc, out_ticks, keeps_heard): convert the in-order packets of a lane route here."},
    {"take_lane", (PyCFunction)hub_take_lane, METH_O,
     "take_lane(fd): None, or (converted, expected_seq, last_src_ts, marker_next, out_seq, "
     "out_ts, last G.711 datagram or None) since own_lane(), which ends."},
    {"poll", (PyCFunction)hub_poll, METH_O,
     "poll(now): serve the ready sockets (all reads, then all conversions, then all sends, "
     "`batch` datagrams at a time); a list of (key, headers or None, rx_bytes, tx_packets, "
     "tx_bytes, tx_dropped, tx_errors, (datagram, source) or None)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef hub_members[] = {
    {"last_ready", T_INT, offsetof(Hub, last_ready), READONLY,
     "The number of sockets the last poll() found ready."},
    {NULL},
};

static PySequenceMethods hub_as_sequence = {
    .sq_length = (lenfunc)hub_len,
};

static PyTypeObject HubType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "vosapp.io._rtphub.Hub",
    .tp_basicsize = sizeof(Hub),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "RTP sockets behind one epoll fd, forwarding the relay's short path in C.",
    .tp_new = hub_new,
    .tp_init = (initproc)hub_init,
    .tp_dealloc = (destructor)hub_dealloc,
    .tp_traverse = (traverseproc)hub_traverse,
    .tp_clear = (inquiry)hub_clear,
    .tp_methods = hub_methods,
    .tp_members = hub_members,
    .tp_as_sequence = &hub_as_sequence,
};

static struct PyModuleDef rtphub_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "vosapp.io._rtphub",
    .m_doc = "The media relay's native forwarding path (see vosapp.io.rtp_relay).",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__rtphub(void)
{
    if (PyType_Ready(&HubType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&rtphub_module);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "Hub", (PyObject *)&HubType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
