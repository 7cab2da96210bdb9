/* Compiled kernels (app/core/generation/compiled.py says whether they were built; numpy does the same work
   otherwise, to the same bytes): the events stream's JSON Lines written straight from its columns
   (EventBatch.compiled_lines), any rendered fields joined into lines (render.encode_lines), and the counter
   hashing (hashing.py).

   The numpy renderers are the reference; tests/unit/test_compiled.py holds this writer to their bytes.
   A clean line starts with the same head whatever its company (every byte up to the event type's value,
   with blanks for the event id's hex digits, the company id and the driver and truck ids' company tags and
   numbers): it is copied whole and the blanks filled, then the tail is written. Lines with defects are written field by field. The GIL is released while
   the lines are written, so the render threads use every core. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

enum { FIELDS = 7 };
/* Pieces of `texts` (ending at `text_ends`): the seven keys, then these. */
enum { CLOSING = 7, DRIVER_PREFIX, TRUCK_PREFIX, STAMP_TAIL, LAT_OPENING, LON_BETWEEN, PIECES };

static const char HEX[] = "0123456789abcdef";
static const int UUID_HEX_AT[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static int64_t floor_mod(int64_t a, int64_t b) { return a - floor_div(a, b) * b; }

static char PAIRS[200];  /* "00" .. "99" */
static char HEX_PAIRS[512];  /* "00" .. "ff" */

static void fill_tables(void) {
    for (int v = 0; v < 100; v++) {
        PAIRS[2 * v] = (char)('0' + v / 10);
        PAIRS[2 * v + 1] = (char)('0' + v % 10);
    }
    for (int v = 0; v < 256; v++) {
        HEX_PAIRS[2 * v] = HEX[v >> 4];
        HEX_PAIRS[2 * v + 1] = HEX[v & 15];
    }
}

/* `value` as exactly `width` decimal digits (leading zeros kept), two at a time from the right. */
static uint8_t *digits(uint8_t *at, uint64_t value, int width) {
    int k = width;
    while (k >= 2) {
        memcpy(at + k - 2, PAIRS + 2 * (value % 100), 2);
        value /= 100;
        k -= 2;
    }
    if (k) at[0] = (uint8_t)('0' + value % 10);
    return at + width;
}

static uint8_t *copy(uint8_t *at, const uint8_t *text, Py_ssize_t length) {
    memcpy(at, text, (size_t)length);
    return at + length;
}

/* Without a branch per byte (padding comes in runs the branch predictor misses): every byte is stored and
   the cursor moves past the ones that are not padding; the caller's buffer has room for the full width. */
static int all_zero(const uint8_t *bytes, Py_ssize_t length) {
    uint64_t any = 0, word;
    Py_ssize_t k = 0;
    for (; k + 8 <= length; k += 8) {
        memcpy(&word, bytes + k, 8);
        any |= word;
    }
    for (; k < length; k++) any |= bytes[k];
    return any == 0;
}

/* A NUL-padded value without its NULs. Most values are padded at the end only (text narrower than its
   column) or not at all: those are copied whole up to the first NUL; the rest byte by byte. */
static uint8_t *copy_unpadded(uint8_t *at, const uint8_t *value, Py_ssize_t width) {
    const uint8_t *nul = memchr(value, 0, (size_t)width);
    Py_ssize_t kept = nul == NULL ? width : nul - value;
    memcpy(at, value, (size_t)kept);
    at += kept;
    if (nul == NULL || all_zero(nul, width - kept)) return at;
    for (Py_ssize_t k = kept + 1; k < width; k++) {
        *at = value[k];
        at += value[k] != 0;
    }
    return at;
}

static void uuid_hex(uint8_t *at, const uint8_t *raw) {
    for (int k = 0; k < 16; k++) memcpy(at + UUID_HEX_AT[k], HEX_PAIRS + 2 * raw[k], 2);
}

/* 'YYYY-MM-DDTHH:MM:SS.' of a second since the epoch (H. Hinnant's civil-from-days, as
   render.civil_from_days). */
static uint8_t *second_text(uint8_t *at, int64_t second) {
    int64_t days = floor_div(second, 86400), of_day = second - days * 86400;
    int64_t z = days + 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t day = doy - (153 * mp + 2) / 5 + 1;
    int64_t month = mp < 10 ? mp + 3 : mp - 9;
    int64_t year = yoe + era * 400 + (month <= 2);
    at = digits(at, (uint64_t)floor_mod(year, 10000), 4);
    *at++ = '-';
    at = digits(at, (uint64_t)month, 2);
    *at++ = '-';
    at = digits(at, (uint64_t)day, 2);
    *at++ = 'T';
    at = digits(at, (uint64_t)(of_day / 3600), 2);
    *at++ = ':';
    at = digits(at, (uint64_t)(of_day / 60 % 60), 2);
    *at++ = ':';
    at = digits(at, (uint64_t)(of_day % 60), 2);
    *at++ = '.';
    return at;
}

/* Quoted 'YYYY-MM-DDTHH:MM:SS.mmmZ'. */
static uint8_t *timestamp(uint8_t *at, int64_t ms) {
    int64_t second = floor_div(ms, 1000);
    *at++ = '"';
    at = second_text(at, second);
    at = digits(at, (uint64_t)(ms - second * 1000), 3);
    *at++ = 'Z';
    *at++ = '"';
    return at;
}

/* Degrees x 10**5 as a JSON decimal with five places (whole degrees < 1000, as render.coordinate_into). */
static uint8_t *coordinate(uint8_t *at, int64_t scaled) {
    uint64_t magnitude = (uint64_t)(scaled < 0 ? -scaled : scaled);
    uint64_t whole = magnitude / 100000;
    if (scaled < 0) *at++ = '-';
    at = digits(at, whole, whole >= 100 ? 3 : whole >= 10 ? 2 : 1);
    *at++ = '.';
    return digits(at, magnitude % 100000, 5);
}

typedef struct {
    Py_buffer head, blanks, tails, tail_ends, texts, text_ends, uuid, company, driver, truck, event_type,
        timestamp_ms, lat, lon, company_text, type_text, patch_row, patch_field, patch_absent, patch_values;
} Buffers;

typedef struct {
    const uint8_t *texts;
    const int64_t *text_ends;
} Texts;

static const uint8_t *piece(const Texts *t, int index, Py_ssize_t *length) {
    int64_t start = index ? t->text_ends[index - 1] : 0;
    *length = (Py_ssize_t)(t->text_ends[index] - start);
    return t->texts + start;
}

static uint8_t *put_piece(uint8_t *at, const Texts *t, int index) {
    Py_ssize_t length;
    const uint8_t *text = piece(t, index, &length);
    return copy(at, text, length);
}

static uint8_t *location(uint8_t *at, const Texts *t, int opening, int64_t lat, int64_t lon) {
    at = put_piece(at, t, opening);
    at = coordinate(at, lat);
    at = put_piece(at, t, LON_BETWEEN);
    at = coordinate(at, lon);
    *at++ = '}';
    return at;
}

static uint8_t *identifier(uint8_t *at, const Texts *t, int prefix, const uint8_t *company_text, int64_t number) {
    at = put_piece(at, t, prefix);
    at = copy(at, company_text + 24, 12);
    *at++ = '-';
    at = digits(at, (uint64_t)floor_mod(number, 10000), 4);
    *at++ = '"';
    return at;
}

static const char *KEYWORDS[] = {
    "head", "blanks", "tails", "tail_ends", "texts", "text_ends", "uuid", "company", "driver", "truck",
    "event_type", "timestamp_ms", "lat", "lon", "company_text", "type_text", "patch_row", "patch_field",
    "patch_absent", "patch_values", NULL};

static void release(Buffers *b) {
    Py_buffer *all = (Py_buffer *)b;
    for (size_t k = 0; k < sizeof(Buffers) / sizeof(Py_buffer); k++) PyBuffer_Release(&all[k]);
}

static int too_short(const Py_buffer *buffer, Py_ssize_t items, Py_ssize_t item_size, const char *name) {
    if (buffer->len < items * item_size) {
        PyErr_Format(PyExc_ValueError, "%s holds %zd bytes, fewer than %zd", name, buffer->len, items * item_size);
        return 1;
    }
    return 0;
}

static int ascending_within(const Py_buffer *ends, Py_ssize_t count, Py_ssize_t limit) {
    const int64_t *end = ends->buf;
    for (Py_ssize_t k = 0; k < count; k++) {
        if (end[k] < (k ? end[k - 1] : 0) || end[k] > limit) return 0;
    }
    return 1;
}

/* The blanks of the head, in order: the event id's hex digits (36 bytes with its dashes), the company id
   (36), the driver id's company tag (12) and number (4), the truck id's tag and number. */
static const Py_ssize_t BLANK_WIDTHS[] = {36, 36, 12, 4, 12, 4};
enum { BLANKS = 6 };

/* Whether the pieces' ends and the head's blanks lie inside what they index (else an error is set). */
static int within(const Buffers *b, Py_ssize_t head_width) {
    const int64_t *blanks = b->blanks.buf;
    int ok = ascending_within(&b->text_ends, PIECES, b->texts.len)
             && ascending_within(&b->tail_ends, b->tail_ends.len / 8, b->tails.len);
    for (int k = 0; ok && k < BLANKS; k++) ok = blanks[k] >= 0 && blanks[k] + BLANK_WIDTHS[k] <= head_width;
    if (!ok) PyErr_SetString(PyExc_ValueError, "a text end or a head's blank lies outside what it indexes");
    return ok;
}

/* event_lines(head, blanks, tails, tail_ends, texts, text_ends, uuid, company, driver, truck, event_type,
   timestamp_ms, lat, lon, company_text, type_text, patch_row, patch_field, patch_absent, patch_values)
   -> the lines, a bytearray. Column dtypes: uuid (n, 16) uint8, company int32, driver and
   truck int16, event_type uint8, timestamp_ms int64, lat and lon int32; head uint8, blanks int64 x 6
   (where BLANK_WIDTHS' values go in it); tails and texts uint8 with int64
   ends; company_text (companies, 36); type_text (types, width) NUL-padded; patches sorted by (row, field):
   int64 rows and fields, bool absent, (patches, width) uint8 NUL-padded values. */
static PyObject *event_lines(PyObject *self, PyObject *args, PyObject *kwargs) {
    Buffers b;
    memset(&b, 0, sizeof b);
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*", (char **)KEYWORDS,
                                     &b.head, &b.blanks, &b.tails, &b.tail_ends, &b.texts, &b.text_ends,
                                     &b.uuid, &b.company, &b.driver, &b.truck, &b.event_type, &b.timestamp_ms,
                                     &b.lat, &b.lon, &b.company_text, &b.type_text, &b.patch_row, &b.patch_field,
                                     &b.patch_absent, &b.patch_values))
        return NULL;
    Py_ssize_t rows = b.event_type.len, types = b.tail_ends.len / 8, patches = b.patch_row.len / 8;
    Py_ssize_t companies = b.company_text.len / 36;
    Py_ssize_t head_width = b.head.len;
    Py_ssize_t type_width = types ? b.type_text.len / types : 0;
    Py_ssize_t patch_width = patches ? b.patch_values.len / patches : 0;
    if (too_short(&b.uuid, rows, 16, "uuid") || too_short(&b.company, rows, 4, "company")
        || too_short(&b.driver, rows, 2, "driver") || too_short(&b.truck, rows, 2, "truck")
        || too_short(&b.timestamp_ms, rows, 8, "timestamp_ms") || too_short(&b.lat, rows, 4, "lat")
        || too_short(&b.lon, rows, 4, "lon") || too_short(&b.blanks, BLANKS, 8, "blanks")
        || too_short(&b.text_ends, PIECES, 8, "text_ends") || too_short(&b.patch_field, patches, 8, "patch_field")
        || too_short(&b.patch_absent, patches, 1, "patch_absent") || !within(&b, head_width)) {
        release(&b);
        return NULL;
    }
    const Texts t = {b.texts.buf, b.text_ends.buf};
    /* The widest line without patches: a clean one, or one written field by field. */
    Py_ssize_t longest_tail = 0, length;
    for (Py_ssize_t k = 0; k < types; k++) {
        int64_t from = k ? ((const int64_t *)b.tail_ends.buf)[k - 1] : 0;
        if (((const int64_t *)b.tail_ends.buf)[k] - from > longest_tail)
            longest_tail = (Py_ssize_t)(((const int64_t *)b.tail_ends.buf)[k] - from);
    }
    const Py_ssize_t coordinate_width = 10;  /* '-', three digits, '.', five */
    Py_ssize_t location_width = coordinate_width * 2 + 1 + (piece(&t, LON_BETWEEN, &length), length);
    Py_ssize_t clean = head_width + longest_tail + 20 + 3 + (piece(&t, STAMP_TAIL, &length), length) + location_width + 2;
    Py_ssize_t by_field = (Py_ssize_t)((const int64_t *)b.text_ends.buf)[CLOSING] + 38 + 38
                          + 2 * ((piece(&t, DRIVER_PREFIX, &length), length) + 12 + 1 + 4 + 1) + type_width + 26
                          + (piece(&t, LAT_OPENING, &length), length) + location_width;
    Py_ssize_t widest = clean > by_field ? clean : by_field;
    PyObject *lines = PyByteArray_FromStringAndSize(NULL, rows * widest + patches * patch_width);
    if (lines == NULL) {
        release(&b);
        return NULL;
    }
    const int32_t *company = b.company.buf, *lat = b.lat.buf, *lon = b.lon.buf;
    const int16_t *driver = b.driver.buf, *truck = b.truck.buf;
    const uint8_t *event_type = b.event_type.buf, *uuid = b.uuid.buf, *head = b.head.buf;
    const uint8_t *company_text = b.company_text.buf, *type_text = b.type_text.buf, *tails = b.tails.buf;
    const uint8_t *patch_absent = b.patch_absent.buf, *patch_values = b.patch_values.buf;
    const int64_t *timestamp_ms = b.timestamp_ms.buf, *tail_ends = b.tail_ends.buf, *blanks = b.blanks.buf;
    const int64_t *patch_row = b.patch_row.buf, *patch_field = b.patch_field.buf;
    uint8_t *const start = (uint8_t *)PyByteArray_AS_STRING(lines);
    uint8_t *const end = start + PyByteArray_GET_SIZE(lines);
    uint8_t *at = start;
    const char *bad = NULL;
    Py_ssize_t p = 0;
    int64_t second = INT64_MIN;
    uint8_t stamp[20];

    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < rows; i++) {
        int32_t c = company[i];
        uint8_t kind = event_type[i];
        if (c < 0 || c >= companies || kind >= types) {
            bad = c < 0 || c >= companies ? "a company index is outside the roster"
                                          : "an event type index is outside the types";
            break;
        }
        if (lat[i] <= -100000000 || lat[i] >= 100000000 || lon[i] <= -100000000 || lon[i] >= 100000000) {
            bad = "a coordinate is 1000 degrees or more";
            break;
        }
        uint8_t *line = at;
        Py_ssize_t room = widest;  /* what this line may take: more for each patch it has */
        for (Py_ssize_t q = p; q < patches && patch_row[q] == i; q++) room += patch_width;
        if (at + room > end) {
            bad = "the lines outgrew their buffer";
            break;
        }
        if (p < patches && patch_row[p] == i) {  /* a line with defects: field by field */
            for (int f = 0; f < FIELDS; f++) {
                int absent = 0;
                Py_ssize_t override = -1;
                for (; p < patches && patch_row[p] == i && patch_field[p] == f; p++) {
                    if (patch_absent[p]) absent = 1;
                    else override = p;
                }
                if (absent) continue;
                at = put_piece(at, &t, f);
                if (override >= 0) {
                    at = copy_unpadded(at, patch_values + override * patch_width, patch_width);
                } else if (f == 0) {
                    at[0] = '"';
                    at[9] = at[14] = at[19] = at[24] = '-';
                    uuid_hex(at + 1, uuid + 16 * i);
                    at[37] = '"';
                    at += 38;
                } else if (f == 1) {
                    *at++ = '"';
                    at = copy(at, company_text + 36 * c, 36);
                    *at++ = '"';
                } else if (f == 2 || f == 3) {
                    at = identifier(at, &t, f == 2 ? DRIVER_PREFIX : TRUCK_PREFIX, company_text + 36 * c,
                                    f == 2 ? driver[i] : truck[i]);
                } else if (f == 4) {
                    at = copy_unpadded(at, type_text + kind * type_width, type_width);
                } else if (f == 5) {
                    at = timestamp(at, timestamp_ms[i]);
                } else {
                    at = location(at, &t, LAT_OPENING, lat[i], lon[i]);
                }
            }
            at = put_piece(at, &t, CLOSING);
            if (p < patches && patch_row[p] == i) {
                bad = "patches are not sorted by (row, field)";
                break;
            }
        } else {  /* a clean line: the head, its blanks filled, then the tail */
            at = copy(at, head, head_width);
            uuid_hex(line + blanks[0], uuid + 16 * i);
            copy(line + blanks[1], company_text + 36 * c, 36);
            copy(line + blanks[2], company_text + 36 * c + 24, 12);
            digits(line + blanks[3], (uint64_t)floor_mod(driver[i], 10000), 4);
            copy(line + blanks[4], company_text + 36 * c + 24, 12);
            digits(line + blanks[5], (uint64_t)floor_mod(truck[i], 10000), 4);
            int64_t tail_start = kind ? tail_ends[kind - 1] : 0;
            at = copy(at, tails + tail_start, (Py_ssize_t)(tail_ends[kind] - tail_start));
            int64_t ms = timestamp_ms[i], this_second = floor_div(ms, 1000);
            if (this_second != second) {
                second = this_second;
                second_text(stamp, second);
            }
            at = copy(at, stamp, 20);
            at = digits(at, (uint64_t)(ms - second * 1000), 3);
            at = location(at, &t, STAMP_TAIL, lat[i], lon[i]);
            *at++ = '}';
            *at++ = '\n';
        }
        if (at - line > room) {
            bad = "a line is wider than its bound";
            break;
        }
    }
    Py_END_ALLOW_THREADS

    release(&b);
    if (bad != NULL) {
        Py_DECREF(lines);
        PyErr_SetString(PyExc_ValueError, bad);
        return NULL;
    }
    if (PyByteArray_Resize(lines, at - start) < 0) {
        Py_DECREF(lines);
        return NULL;
    }
    return lines;
}

/* Take a (rows, width) uint8 matrix (rows < 0: any number) whose rows may repeat (stride 0) but whose
   bytes are contiguous within a row; 0 with an error set if it is not one. */
static int matrix(PyObject *source, Py_buffer *view, Py_ssize_t rows, Py_ssize_t *width, Py_ssize_t *stride) {
    if (PyObject_GetBuffer(source, view, PyBUF_STRIDED_RO | PyBUF_FORMAT) < 0) return 0;
    int ok = view->ndim == 2 && view->itemsize == 1 && (rows < 0 || view->shape[0] == rows)
             && (view->shape[1] <= 1 || view->strides[1] == 1);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "a field is not a (rows, width) uint8 matrix with contiguous rows");
        PyBuffer_Release(view);
        return 0;
    }
    *width = view->shape[1];
    *stride = view->strides[0];
    return 1;
}

/* join_lines(keys, key_ends, fields, absent) -> bytearray: JSON Lines from rendered fields, as
   render.encode_lines: row by row, each field's key (``keys`` pieces ending at ``key_ends``; one more piece
   closes the line) and its value without the NUL padding; a field whose ``absent`` mask (None, or bool
   per row) is set is left out, key and value. */
static PyObject *join_lines(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer keys, key_ends;
    PyObject *fields, *absent;
    if (!PyArg_ParseTuple(args, "y*y*OO", &keys, &key_ends, &fields, &absent)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t count = PySequence_Check(fields) ? PySequence_Size(fields) : -1;
    if (count <= 0 || !PySequence_Check(absent) || PySequence_Size(absent) != count
        || key_ends.len != (count + 1) * 8) {
        PyErr_SetString(PyExc_ValueError, "join_lines needs fields, as many absent masks and one key more");
        PyBuffer_Release(&keys);
        PyBuffer_Release(&key_ends);
        return NULL;
    }
    const int64_t *ends = key_ends.buf;
    Py_buffer *values = PyMem_Calloc((size_t)count, sizeof(Py_buffer));
    Py_buffer *masks = PyMem_Calloc((size_t)count, sizeof(Py_buffer));
    Py_ssize_t *widths = PyMem_Calloc((size_t)count, sizeof(Py_ssize_t));
    Py_ssize_t *strides = PyMem_Calloc((size_t)count, sizeof(Py_ssize_t));
    Py_ssize_t held = 0, rows = -1, line = 0;
    if (values == NULL || masks == NULL || widths == NULL || strides == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; held < count; held++) {
        PyObject *field = PySequence_GetItem(fields, held), *mask = PySequence_GetItem(absent, held);
        int got_value = field != NULL && mask != NULL && matrix(field, &values[held], rows, &widths[held],
                                                                &strides[held]);
        int ok = got_value;
        if (ok && rows < 0) rows = values[held].shape[0];
        if (ok && mask != Py_None) {
            if (PyObject_GetBuffer(mask, &masks[held], PyBUF_C_CONTIGUOUS) < 0) {
                masks[held].buf = NULL;
                ok = 0;
            } else if (masks[held].len != rows) {
                PyErr_SetString(PyExc_ValueError, "an absent mask does not have one flag per row");
                PyBuffer_Release(&masks[held]);
                masks[held].buf = NULL;
                ok = 0;
            }
        }
        Py_XDECREF(field);
        Py_XDECREF(mask);
        if (!ok) {
            if (got_value) PyBuffer_Release(&values[held]);
            goto done;
        }
        line += widths[held];
    }
    line += (Py_ssize_t)ends[count];
    result = PyByteArray_FromStringAndSize(NULL, rows * line);
    if (result == NULL) goto done;
    uint8_t *const start = (uint8_t *)PyByteArray_AS_STRING(result);
    uint8_t *at = start;
    const uint8_t *key_text = keys.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < rows; i++) {
        for (Py_ssize_t f = 0; f < count; f++) {
            if (masks[f].buf != NULL && ((const uint8_t *)masks[f].buf)[i]) continue;
            int64_t from = f ? ends[f - 1] : 0;
            at = copy(at, key_text + from, (Py_ssize_t)(ends[f] - from));
            at = copy_unpadded(at, (const uint8_t *)values[f].buf + i * strides[f], widths[f]);
        }
        at = copy(at, key_text + ends[count - 1], (Py_ssize_t)(ends[count] - ends[count - 1]));
    }
    Py_END_ALLOW_THREADS
    if (PyByteArray_Resize(result, at - start) < 0) Py_CLEAR(result);
done:
    for (Py_ssize_t f = 0; f < held; f++) {
        PyBuffer_Release(&values[f]);
        if (masks[f].buf != NULL) PyBuffer_Release(&masks[f]);
    }
    PyMem_Free(values);
    PyMem_Free(masks);
    PyMem_Free(widths);
    PyMem_Free(strides);
    PyBuffer_Release(&keys);
    PyBuffer_Release(&key_ends);
    return result;
}

/* splitmix64's finaliser (as hashing.mix). */
static inline uint64_t splitmix(uint64_t z) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* hash_into(a, b, out, as_uniform): out[i] = mix(a[i] ^ b[i]) (b of one value: the same for every i), as
   uint64, or as_uniform its top 53 bits as a double in [0, 1) (as hashing.uniform). */
static PyObject *hash_into(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer a, b, out;
    int as_uniform;
    if (!PyArg_ParseTuple(args, "y*y*w*p", &a, &b, &out, &as_uniform)) return NULL;
    Py_ssize_t n = a.len / 8;
    PyObject *result = NULL;
    if (a.len % 8 || out.len != n * 8 || (b.len != 8 && b.len != a.len)) {
        PyErr_SetString(PyExc_ValueError, "hash_into needs 8-byte values: a and out of one length, b of it or one");
    } else {
        const uint64_t *x = a.buf, *y = b.buf;
        int one = b.len == 8;
        Py_BEGIN_ALLOW_THREADS
        if (as_uniform) {
            double *u = out.buf;
            for (Py_ssize_t i = 0; i < n; i++) u[i] = (double)(splitmix(x[i] ^ y[one ? 0 : i]) >> 11) * 0x1p-53;
        } else {
            uint64_t *z = out.buf;
            for (Py_ssize_t i = 0; i < n; i++) z[i] = splitmix(x[i] ^ y[one ? 0 : i]);
        }
        Py_END_ALLOW_THREADS
        result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    PyBuffer_Release(&out);
    return result;
}

/* Release each buffer a kernel took (RELEASE(&a, &b, ...)). */
static void release_each(Py_buffer *const *buffers, size_t count) {
    for (size_t k = 0; k < count; k++) PyBuffer_Release(buffers[k]);
}
#define RELEASE(...)                                                                  \
    do {                                                                              \
        Py_buffer *const taken_[] = {__VA_ARGS__};                                    \
        release_each(taken_, sizeof(taken_) / sizeof(taken_[0]));                     \
    } while (0)

static inline double uniform_of(uint64_t key, uint64_t salt) { return (double)(splitmix(key ^ salt) >> 11) * 0x1p-53; }

/* stop_places(rows_at, rows_before, company, day_key, slot, depot_lat, depot_lon, lon_km, numbers, salts,
   lat_at, lon_at, lat_before, lon_before): itinerary._stop for the rows of `rows_at` (stop slot[r], written to
   lat_at[r] and lon_at[r]) and of `rows_before` (the stop before it, slot[r] - 1, to lat_before and lon_before),
   both sorted, in one pass: a row in both draws its day's route once. Every operation is numpy's, in its
   order (no fused multiply-add: see pyproject), and sin, cos and sqrt are the C library's, as numpy's are for
   float64 here: the same doubles. numbers: route radius low and span, 2 pi, route speed, slot seconds, scatter
   km, km per degree. salts: mix of the purposes route_radius, route_phase, route_turn, scatter_radius,
   scatter_angle. */
typedef struct {
    double r_low, r_span, two_pi, speed, slot_s, scatter, km_per_deg;
    const uint64_t *salt;
} Route;

static void stop_place(const Route *route, uint64_t day, double radius, double phase, double sin_phase,
                       double cos_phase, double turn, int64_t s, double depot_lat, double depot_lon, double lon_km,
                       double *lat, double *lon) {
    double hours = fmax((double)s + 0.5, 0.0) * route->slot_s / 3600.0;
    double angle = phase + turn * route->speed * hours / radius;
    double sin_angle, cos_angle, sin_direction, cos_direction;
    sincos(angle, &sin_angle, &cos_angle);
    double north = radius * (sin_angle - sin_phase);
    double east = radius * (cos_angle - cos_phase);
    uint64_t stop_key = splitmix(splitmix(day) ^ (uint64_t)(s + 1));
    double distance = route->scatter * sqrt(uniform_of(stop_key, route->salt[3]));
    double direction = route->two_pi * uniform_of(stop_key, route->salt[4]);
    sincos(direction, &sin_direction, &cos_direction);
    north = north + distance * sin_direction;
    east = east + distance * cos_direction;
    *lat = depot_lat + north / route->km_per_deg;
    *lon = depot_lon + east / lon_km;
}

static int rows_within(const Py_buffer *rows, Py_ssize_t size, const int64_t *company, Py_ssize_t companies) {
    const int64_t *row = rows->buf;
    if (rows->len % 8) return 0;
    for (Py_ssize_t i = 0; i < rows->len / 8; i++) {
        if (row[i] < 0 || row[i] >= size || (i && row[i] <= row[i - 1])) return 0;
        if (company[row[i]] < 0 || company[row[i]] >= companies) return 0;
    }
    return 1;
}

static PyObject *stop_places(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer at, before, company, day_key, slot, depot_lat, depot_lon, lon_km, numbers, salts, lat_at, lon_at,
        lat_before, lon_before;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*y*y*y*w*w*w*w*", &at, &before, &company, &day_key, &slot, &depot_lat,
                          &depot_lon, &lon_km, &numbers, &salts, &lat_at, &lon_at, &lat_before, &lon_before))
        return NULL;
    Py_ssize_t size = company.len / 8, companies = depot_lat.len / 8;
    PyObject *result = NULL;
    int ok = company.len % 8 == 0 && day_key.len == company.len && slot.len == company.len
             && lat_at.len == company.len && lon_at.len == company.len && lat_before.len == company.len
             && lon_before.len == company.len && depot_lon.len == depot_lat.len && lon_km.len == depot_lat.len
             && numbers.len == 7 * 8 && salts.len == 5 * 8
             && rows_within(&at, size, company.buf, companies) && rows_within(&before, size, company.buf, companies);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "stop_places needs 8-byte columns of one length, sorted rows and "
                                          "companies within them, 7 numbers and 5 salts");
    } else {
        const int64_t *co = company.buf, *sl = slot.buf, *ra = at.buf, *rb = before.buf;
        const uint64_t *dk = day_key.buf;
        const double *dlat = depot_lat.buf, *dlon = depot_lon.buf, *km = lon_km.buf, *x = numbers.buf;
        double *out_lat_at = lat_at.buf, *out_lon_at = lon_at.buf, *out_lat_before = lat_before.buf,
               *out_lon_before = lon_before.buf;
        const Route route = {x[0], x[1], x[2], x[3], x[4], x[5], x[6], salts.buf};
        Py_ssize_t na = at.len / 8, nb = before.len / 8, i = 0, j = 0;
        Py_BEGIN_ALLOW_THREADS
        while (i < na || j < nb) {
            int64_t r = j >= nb || (i < na && ra[i] < rb[j]) ? ra[i] : rb[j];
            int64_t c = co[r];
            uint64_t day = dk[r];
            double radius = route.r_low + route.r_span * uniform_of(day, route.salt[0]);
            double phase = route.two_pi * uniform_of(day, route.salt[1]);
            double turn = uniform_of(day, route.salt[2]) < 0.5 ? -1.0 : 1.0;
            double sin_phase, cos_phase;
            sincos(phase, &sin_phase, &cos_phase);
            if (i < na && ra[i] == r) {
                stop_place(&route, day, radius, phase, sin_phase, cos_phase, turn, sl[r], dlat[c], dlon[c], km[c],
                           &out_lat_at[r], &out_lon_at[r]);
                i++;
            }
            if (j < nb && rb[j] == r) {
                stop_place(&route, day, radius, phase, sin_phase, cos_phase, turn, sl[r] - 1, dlat[c], dlon[c],
                           km[c], &out_lat_before[r], &out_lon_before[r]);
                j++;
            }
        }
        Py_END_ALLOW_THREADS
        result = Py_NewRef(Py_None);
    }
    RELEASE(&at, &before, &company, &day_key, &slot, &depot_lat, &depot_lon, &lon_km, &numbers, &salts, &lat_at,
            &lon_at, &lat_before, &lon_before);
    return result;
}

/* slot_times(shift_start, slot, day_key, numbers, salts, depart, arrive, made): itinerary._slot_times in one
   pass, numpy's operations in numpy's order. numbers: slot seconds, the departure's share of a slot in
   seconds, the drive's least share and its span, the chance of each delivery. salts: mix of the purposes
   drive and deliveries. */
static PyObject *slot_times(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer start, slot, day_key, numbers, salts, depart, arrive, made;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*w*w*w*", &start, &slot, &day_key, &numbers, &salts, &depart, &arrive,
                          &made)) return NULL;
    Py_ssize_t n = start.len / 8;
    PyObject *result = NULL;
    if (start.len % 8 || slot.len != start.len || day_key.len != start.len || numbers.len != 5 * 8
        || salts.len != 2 * 8 || depart.len != start.len || arrive.len != start.len || made.len != start.len) {
        PyErr_SetString(PyExc_ValueError, "slot_times needs 8-byte columns of one length, 5 numbers and 2 salts");
    } else {
        const double *s0 = start.buf, *x = numbers.buf;
        const int64_t *sl = slot.buf;
        const uint64_t *dk = day_key.buf, *salt = salts.buf;
        double *out_depart = depart.buf, *out_arrive = arrive.buf;
        int64_t *out_made = made.buf;
        const double slot_s = x[0], depart_s = x[1], drive_min = x[2], drive_span = x[3], share = x[4];
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            uint64_t slot_key = splitmix(splitmix(dk[i]) ^ (uint64_t)sl[i]);
            double begin = s0[i] + (double)sl[i] * slot_s;
            double leave = begin + depart_s;
            out_depart[i] = leave;
            out_arrive[i] = leave + (drive_min + drive_span * uniform_of(slot_key, salt[0])) * slot_s;
            out_made[i] = (uniform_of(slot_key, salt[1]) < share) + (uniform_of(splitmix(slot_key), salt[1]) < share);
        }
        Py_END_ALLOW_THREADS
        result = Py_NewRef(Py_None);
    }
    RELEASE(&start, &slot, &day_key, &numbers, &salts, &depart, &arrive, &made);
    return result;
}

/* The events of a slot (seq 0 start, 1 stop, 2-3 deliveries) as itinerary._kept_times finds them: each one's
   time in ms and whether the window keeps it (it exists, and arrives in the window: in its own window, or in
   its late slot's `arrival` when that is later). */
typedef struct {
    const double *depart, *arrive;
    const int64_t *made, *arrival;  /* arrival: NULL without a look-back */
    double step;
    int64_t start_ms, end_ms, interval_ms;
} Slots;

static inline int kept_event(const Slots *t, Py_ssize_t i, int seq, int64_t *millis) {
    double at = seq == 0 ? t->depart[i] : seq == 1 ? t->arrive[i] : t->arrive[i] + (double)(seq - 1) * t->step;
    int64_t ms = (int64_t)floor(at * 1000.0);
    *millis = ms;
    if (seq >= 2 && t->made[i] < seq - 1) return 0;
    if (t->arrival == NULL) return ms >= t->start_ms && ms < t->end_ms;
    int64_t own = floor_div(ms, t->interval_ms) * t->interval_ms;
    return (own > t->arrival[i] ? own : t->arrival[i]) == t->start_ms;
}

static int slots_of(Slots *t, Py_buffer *depart, Py_buffer *arrive, Py_buffer *made, Py_buffer *arrival,
                    Py_buffer *numbers, Py_buffer *window) {
    if (depart->len % 8 || arrive->len != depart->len || made->len != depart->len
        || (arrival->len && arrival->len != depart->len) || numbers->len != 8 || window->len != 3 * 8) return 0;
    const int64_t *w = window->buf;
    *t = (Slots){depart->buf, arrive->buf, made->buf, arrival->len ? arrival->buf : NULL,
                 ((const double *)numbers->buf)[0], w[0], w[1], w[2]};
    return w[2] > 0;
}

/* slot_parts(depart, arrive, made, arrival, step, window, cuts_ms, first_part, last_part): the slot table's
   pass over a block of slots: for each slot the first and last part (cuts_ms: the inner part boundaries)
   its kept events fall in (len(cuts) + 1 and -1 when none); returns how many events the window keeps.
   window: start, end and length in ms; arrival empty without a look-back. */
static PyObject *slot_parts(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer depart, arrive, made, arrival, numbers, window, cuts, first, last;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*w*w*", &depart, &arrive, &made, &arrival, &numbers, &window, &cuts,
                          &first, &last)) return NULL;
    Slots t;
    Py_ssize_t n = depart.len / 8, m = cuts.len / 8;
    PyObject *result = NULL;
    if (!slots_of(&t, &depart, &arrive, &made, &arrival, &numbers, &window) || cuts.len % 8 || first.len != depart.len
        || last.len != depart.len) {
        PyErr_SetString(PyExc_ValueError, "slot_parts needs 8-byte columns of one length, a step, a window and cuts");
    } else {
        const int64_t *cut = cuts.buf;
        int64_t *first_part = first.buf, *last_part = last.buf;
        long long events = 0;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t lo = m + 1, hi = -1;
            for (int seq = 0; seq < 4; seq++) {
                int64_t ms;
                if (!kept_event(&t, i, seq, &ms)) continue;
                events++;
                Py_ssize_t a = 0, b = m;  /* cuts at or before ms (searchsorted, side right) */
                while (a < b) {
                    Py_ssize_t mid = (a + b) / 2;
                    if (cut[mid] <= ms) a = mid + 1;
                    else b = mid;
                }
                if (a < lo) lo = a;
                if (a > hi) hi = a;
            }
            first_part[i] = lo;
            last_part[i] = hi;
        }
        Py_END_ALLOW_THREADS
        result = PyLong_FromLongLong(events);
    }
    RELEASE(&depart, &arrive, &made, &arrival, &numbers, &window, &cuts, &first, &last);
    return result;
}

/* part_cells(depart, arrive, made, arrival, step, window, part_ms, cells, stamps): the events of a part's
   slots that the window keeps and that happen in the part ([part_ms[0], part_ms[1])), as cells
   (row * 4 + seq, row by row) and their times; returns how many (cells and stamps hold 4 per slot). */
static PyObject *part_cells(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer depart, arrive, made, arrival, numbers, window, part, cells, stamps;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*w*w*", &depart, &arrive, &made, &arrival, &numbers, &window, &part,
                          &cells, &stamps)) return NULL;
    Slots t;
    Py_ssize_t n = depart.len / 8;
    PyObject *result = NULL;
    if (!slots_of(&t, &depart, &arrive, &made, &arrival, &numbers, &window) || part.len != 2 * 8
        || cells.len != 4 * depart.len || stamps.len != 4 * depart.len) {
        PyErr_SetString(PyExc_ValueError, "part_cells needs 8-byte columns of one length, a step, a window, a part "
                                          "and outputs of four per slot");
    } else {
        const int64_t lo = ((const int64_t *)part.buf)[0], hi = ((const int64_t *)part.buf)[1];
        int64_t *cell = cells.buf, *stamp = stamps.buf;
        Py_ssize_t count = 0;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            for (int seq = 0; seq < 4; seq++) {
                int64_t ms;
                if (!kept_event(&t, i, seq, &ms) || ms < lo || ms >= hi) continue;
                cell[count] = (int64_t)i * 4 + seq;
                stamp[count] = ms;
                count++;
            }
        }
        Py_END_ALLOW_THREADS
        result = PyLong_FromSsize_t(count);
    }
    RELEASE(&depart, &arrive, &made, &arrival, &numbers, &window, &part, &cells, &stamps);
    return result;
}

/* trucks(company, driver, day, company_key, fleet_size, out): itinerary._trucks per row: the company's weekly
   rotation over its fleet, as numpy computes it (floor division of the day by 7, unsigned remainders). */
static PyObject *trucks(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer company, driver, day, company_key, fleet_size, out;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*w*", &company, &driver, &day, &company_key, &fleet_size, &out))
        return NULL;
    Py_ssize_t n = company.len / 8, companies = company_key.len / 8;
    const int64_t *co = company.buf, *dr = driver.buf, *dy = day.buf, *size = fleet_size.buf;
    PyObject *result = NULL;
    int ok = company.len % 8 == 0 && driver.len == company.len && day.len == company.len
             && fleet_size.len == company_key.len && out.len == company.len;
    for (Py_ssize_t i = 0; ok && i < n; i++) ok = co[i] >= 0 && co[i] < companies && size[co[i]] > 0 && dr[i] >= 1;
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "trucks needs int64 columns of one length, companies within the keys, "
                                          "fleets of one truck or more and drivers from 1");
    } else {
        const uint64_t *ck = company_key.buf;
        int64_t *truck = out.buf;
        Py_BEGIN_ALLOW_THREADS
        int64_t last_week = INT64_MIN;
        uint64_t week_mix = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t week = floor_div(dy[i], 7);
            if (week != last_week) {
                week_mix = splitmix((uint64_t)week);
                last_week = week;
            }
            int64_t fleet = size[co[i]];
            int64_t rotation = (int64_t)(splitmix(ck[co[i]] ^ week_mix) % (uint64_t)fleet);
            truck[i] = (dr[i] - 1 + rotation) % fleet + 1;
        }
        Py_END_ALLOW_THREADS
        result = Py_NewRef(Py_None);
    }
    RELEASE(&company, &driver, &day, &company_key, &fleet_size, &out);
    return result;
}

/* timestamp_text_into(ms, out): epoch milliseconds as 'YYYY-MM-DDTHH:MM:SS.mmmZ' into (rows, 24), or quoted
   into (rows, 26) (as render.timestamp_text). */
static PyObject *timestamp_text_into(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer ms, out;
    if (!PyArg_ParseTuple(args, "y*w*", &ms, &out)) return NULL;
    Py_ssize_t rows = ms.len / 8, width = rows ? out.len / rows : 24;
    PyObject *result = NULL;
    if (ms.len % 8 || (width != 24 && width != 26) || out.len != rows * width) {
        PyErr_SetString(PyExc_ValueError, "timestamp_text_into needs int64 values and a (rows, 24 or 26) output");
    } else {
        const int64_t *values = ms.buf;
        Py_BEGIN_ALLOW_THREADS
        uint8_t scratch[26];
        for (Py_ssize_t i = 0; i < rows; i++) {
            uint8_t *at = (uint8_t *)out.buf + i * width;
            timestamp(scratch, values[i]);
            memcpy(at, width == 26 ? scratch : scratch + 1, (size_t)width);
        }
        Py_END_ALLOW_THREADS
        result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&ms);
    PyBuffer_Release(&out);
    return result;
}

/* A coordinate (degrees x 10**5, whole degrees < 1000) in 10 bytes as render.coordinate_into lays it out:
   sign or padding, the whole part right-aligned in three (padding before it), '.', five digits. */
static void coordinate_cell(uint8_t *at, int64_t scaled) {
    uint64_t magnitude = (uint64_t)(scaled < 0 ? -scaled : scaled);
    uint64_t whole = magnitude / 100000 % 1000;
    at[0] = scaled < 0 ? '-' : 0;
    at[1] = whole >= 100 ? (uint8_t)('0' + whole / 100) : 0;
    at[2] = whole >= 10 ? (uint8_t)('0' + whole / 10 % 10) : 0;
    at[3] = (uint8_t)('0' + whole % 10);
    at[4] = '.';
    digits(at + 5, magnitude % 100000, 5);
}

/* location_into(lat, lon, out): '{"lat":…,"lon":…}' into (rows, 35), padded as events.location_text. */
static PyObject *location_into(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer lat, lon, out;
    if (!PyArg_ParseTuple(args, "y*y*w*", &lat, &lon, &out)) return NULL;
    Py_ssize_t rows = lat.len / 8;
    const int64_t *la = lat.buf, *lo = lon.buf;
    PyObject *result = NULL;
    int ok = lat.len % 8 == 0 && lon.len == lat.len && out.len == rows * 35;
    if (!ok) PyErr_SetString(PyExc_ValueError, "location_into needs int64 lat and lon of one length and a (rows, 35) output");
    for (Py_ssize_t i = 0; ok && i < rows; i++) {
        if (la[i] <= -100000000 || la[i] >= 100000000 || lo[i] <= -100000000 || lo[i] >= 100000000) {
            PyErr_SetString(PyExc_ValueError, "location_into renders coordinates within 1000 degrees");
            ok = 0;
        }
    }
    if (ok) {
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < rows; i++) {
            uint8_t *at = (uint8_t *)out.buf + i * 35;
            memcpy(at, "{\"lat\":", 7);
            coordinate_cell(at + 7, la[i]);
            memcpy(at + 17, ",\"lon\":", 7);
            coordinate_cell(at + 24, lo[i]);
            at[34] = '}';
        }
        Py_END_ALLOW_THREADS
        result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&lat);
    PyBuffer_Release(&lon);
    PyBuffer_Release(&out);
    return result;
}

/* uuid_text_into(raw, out): (rows, 16) bytes as canonical UUID text into (rows, 36) or, quoted, (rows, 38). */
static PyObject *uuid_text_into(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer raw, out;
    if (!PyArg_ParseTuple(args, "y*w*", &raw, &out)) return NULL;
    Py_ssize_t rows = raw.len / 16, width = rows ? out.len / rows : 36;
    PyObject *result = NULL;
    if (raw.len % 16 || (width != 36 && width != 38) || out.len != rows * width) {
        PyErr_SetString(PyExc_ValueError, "uuid_text_into needs (rows, 16) bytes and a (rows, 36 or 38) output");
    } else {
        Py_BEGIN_ALLOW_THREADS
        int quoted = width == 38;
        for (Py_ssize_t i = 0; i < rows; i++) {
            uint8_t *at = (uint8_t *)out.buf + i * width;
            if (quoted) at[0] = at[37] = '"';
            at[quoted + 8] = at[quoted + 13] = at[quoted + 18] = at[quoted + 23] = '-';
            uuid_hex(at + quoted, (const uint8_t *)raw.buf + 16 * i);
        }
        Py_END_ALLOW_THREADS
        result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&raw);
    PyBuffer_Release(&out);
    return result;
}

/* integer_into(values, out): int64 values as render.integer does, into (rows, width + 1): a sign column
   ('-' or NUL), then the last `width` digits of the magnitude, its leading zeros NUL (the last digit kept). */
static PyObject *integer_into(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer values, out;
    if (!PyArg_ParseTuple(args, "y*w*", &values, &out)) return NULL;
    Py_ssize_t rows = values.len / 8, width = rows ? out.len / rows - 1 : 0;
    PyObject *result = NULL;
    if (values.len % 8 || (rows && (width < 1 || width > 19 || out.len != rows * (width + 1)))) {
        PyErr_SetString(PyExc_ValueError, "integer_into needs int64 values and a (rows, 2 to 20) output");
    } else {
        Py_BEGIN_ALLOW_THREADS
        uint64_t limit = 1;
        for (Py_ssize_t k = 0; k < width; k++) limit *= 10;
        for (Py_ssize_t i = 0; i < rows; i++) {
            int64_t value = ((const int64_t *)values.buf)[i];
            uint64_t magnitude = value < 0 ? 0 - (uint64_t)value : (uint64_t)value;
            uint8_t *at = (uint8_t *)out.buf + i * (width + 1);
            at[0] = value < 0 ? '-' : 0;
            uint64_t v = magnitude % limit;
            for (Py_ssize_t k = width; k >= 1; k--) {
                at[k] = (uint8_t)('0' + v % 10);
                v /= 10;
            }
            uint64_t power = limit / 10;  /* the place of at[1] */
            for (Py_ssize_t k = 1; k < width && magnitude < power; k++, power /= 10) at[k] = 0;
        }
        Py_END_ALLOW_THREADS
        result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&values);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef METHODS[] = {
    {"uuid_text_into", uuid_text_into, METH_VARARGS, "UUID text of (rows, 16) bytes into (rows, 36 or 38)."},
    {"integer_into", integer_into, METH_VARARGS, "int64 values as render.integer writes them."},
    {"hash_into", hash_into, METH_VARARGS, "out = mix(a ^ b), as uint64 or as uniforms in [0, 1)."},
    {"timestamp_text_into", timestamp_text_into, METH_VARARGS, "Epoch ms as ISO 8601 text (rows, 24 or 26)."},
    {"location_into", location_into, METH_VARARGS, "Scaled lat and lon as location objects (rows, 35)."},
    {"slot_times", slot_times, METH_VARARGS, "itinerary._slot_times' departures, arrivals and deliveries."},
    {"slot_parts", slot_parts, METH_VARARGS, "The slot table's first and last part of each slot's kept events."},
    {"part_cells", part_cells, METH_VARARGS, "A part's kept events as cells and times."},
    {"trucks", trucks, METH_VARARGS, "itinerary._trucks' truck numbers."},
    {"stop_places", stop_places, METH_VARARGS, "itinerary._stop's latitude and longitude, in one pass."},
    {"join_lines", join_lines, METH_VARARGS, "JSON Lines from rendered field matrices, as a bytearray."},
    {"event_lines", (PyCFunction)(void (*)(void))event_lines, METH_VARARGS | METH_KEYWORDS,
     "An events chunk's JSON Lines, as a bytearray."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, METHODS};

PyMODINIT_FUNC PyInit__native(void) {
    fill_tables();
    return PyModule_Create(&MODULE);
}
