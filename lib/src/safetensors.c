// SPDX-License-Identifier: MIT
/*
 * safetensors: read, check and write sets of named tensors. The header is
 * JSON, parsed and written with jansson; every tensor is copied into its own
 * 64-byte aligned allocation, so files need no alignment of their own.
 * Data is little-endian on disk, as on the hosts we build for.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "polar/model.h"
#include "polar_internal.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

static const struct {
	const char *name;
	size_t size;
} dtypes[] = {
	[POLAR_DTYPE_F32] = { "F32", 4 },
	[POLAR_DTYPE_I8] = { "I8", 1 },
	[POLAR_DTYPE_U8] = { "U8", 1 },
	[POLAR_DTYPE_I32] = { "I32", 4 },
};
#define NDTYPES (sizeof(dtypes) / sizeof(dtypes[0]))

const char *polar_dtype_name(enum polar_dtype dtype)
{
	return (unsigned int)dtype < NDTYPES ? dtypes[dtype].name : NULL;
}

size_t polar_dtype_size(enum polar_dtype dtype)
{
	return (unsigned int)dtype < NDTYPES ? dtypes[dtype].size : 0;
}

void polar_tensors_init(struct polar_tensors *ts)
{
	if (!ts) {
		polar_null_arg(__func__, "ts");
		return;
	}
	memset(ts, 0, sizeof(*ts));
}

void polar_tensors_free(struct polar_tensors *ts)
{
	size_t i;

	if (!ts)
		return;
	for (i = 0; i < ts->count; i++) {
		free(ts->tensors[i].name);
		free(ts->tensors[i].data);
	}
	for (i = 0; i < ts->nmeta; i++) {
		free(ts->meta[i].key);
		free(ts->meta[i].value);
	}
	free(ts->tensors);
	free(ts->meta);
	polar_tensors_init(ts);
}

static const char *src(const struct polar_tensors *ts)
{
	return ts->source[0] ? ts->source : "tensors";
}

/* "[16,1,5,5]" */
static const char *shape_str(char *buf, size_t len, unsigned int ndim,
			     const uint64_t *shape)
{
	size_t n = 0;
	unsigned int i;

	n += (size_t)snprintf(buf, len, "[");
	for (i = 0; i < ndim && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%llu", i ? "," : "",
				      (unsigned long long)shape[i]);
	if (n < len)
		snprintf(buf + n, len - n, "]");
	return buf;
}

const struct polar_tensor *polar_tensors_find(const struct polar_tensors *ts,
					       const char *name)
{
	size_t i;

	if (!ts || !name) {
		polar_null_arg(__func__, ts ? "name" : "ts");
		return NULL;
	}
	for (i = 0; i < ts->count; i++)
		if (!strcmp(ts->tensors[i].name, name))
			return &ts->tensors[i];
	return NULL;
}

static int add_tensor(struct polar_tensors *ts, const char *name,
		      enum polar_dtype dtype, unsigned int ndim,
		      const uint64_t *shape, const void *data, uint64_t count)
{
	struct polar_tensor *t;
	size_t nbytes = (size_t)count * dtypes[dtype].size;

	if (ts->count == ts->cap) {
		size_t cap = ts->cap ? ts->cap * 2 : 16;
		struct polar_tensor *n = realloc(ts->tensors, cap * sizeof(*n));

		if (!n)
			return polar_fail(-ENOMEM, "%s: out of memory", src(ts));
		ts->tensors = n;
		ts->cap = cap;
	}
	t = &ts->tensors[ts->count];
	memset(t, 0, sizeof(*t));
	t->name = strdup(name);
	t->data = aligned_alloc(64, (nbytes + 63) / 64 * 64 + 64);
	if (!t->name || !t->data) {
		free(t->name);
		free(t->data);
		return polar_fail(-ENOMEM, "%s: out of memory", src(ts));
	}
	t->dtype = dtype;
	t->ndim = ndim;
	/* A scalar may come with no shape array at all. */
	if (ndim)
		memcpy(t->shape, shape, ndim * sizeof(shape[0]));
	t->count = count;
	t->nbytes = nbytes;
	if (data)
		memcpy(t->data, data, nbytes);
	else
		memset(t->data, 0, nbytes);
	ts->count++;
	return 0;
}

/* Product of the shape, or -EOVERFLOW past 2^48 elements. */
static int shape_count(unsigned int ndim, const uint64_t *shape,
		       uint64_t *count)
{
	uint64_t c = 1;
	unsigned int i;

	for (i = 0; i < ndim; i++) {
		if (shape[i] && c > (UINT64_C(1) << 48) / shape[i])
			return -EOVERFLOW;
		c *= shape[i];
	}
	*count = c;
	return 0;
}

int polar_tensors_add(struct polar_tensors *ts, const char *name,
		      enum polar_dtype dtype, unsigned int ndim,
		      const uint64_t *shape, const void *data)
{
	uint64_t count;

	polar_clear_error();
	POLAR_NONNULL(__func__, ts);
	POLAR_NONNULL(__func__, name);
	if (ndim && !shape)
		return polar_fail(-EINVAL, "%s: %s: shape is NULL with %u "
				  "dimensions", src(ts), name, ndim);
	if ((unsigned int)dtype >= NDTYPES)
		return polar_fail(-EINVAL, "%s: %s: unknown dtype %d", src(ts),
				  name, (int)dtype);
	if (ndim > POLAR_TENSOR_MAX_DIMS)
		return polar_fail(-EINVAL, "%s: %s: %u dimensions, at most %d",
				  src(ts), name, ndim, POLAR_TENSOR_MAX_DIMS);
	if (!name[0] || !strcmp(name, "__metadata__"))
		return polar_fail(-EINVAL, "%s: invalid tensor name \"%s\"",
				  src(ts), name);
	if (polar_tensors_find(ts, name))
		return polar_fail(-EEXIST, "%s: %s: duplicate tensor name",
				  src(ts), name);
	if (shape_count(ndim, shape, &count))
		return polar_fail(-EOVERFLOW, "%s: %s: shape too large",
				  src(ts), name);
	return add_tensor(ts, name, dtype, ndim, shape, data, count);
}

int polar_tensors_set_meta(struct polar_tensors *ts, const char *key,
			   const char *value)
{
	char *v, *k;
	size_t i;

	polar_clear_error();
	POLAR_NONNULL(__func__, ts);
	POLAR_NONNULL(__func__, key);
	POLAR_NONNULL(__func__, value);
	v = strdup(value);
	if (!v)
		return polar_fail(-ENOMEM, "%s: out of memory", src(ts));
	for (i = 0; i < ts->nmeta; i++) {
		if (!strcmp(ts->meta[i].key, key)) {
			free(ts->meta[i].value);
			ts->meta[i].value = v;
			return 0;
		}
	}
	if (ts->nmeta == ts->meta_cap) {
		size_t cap = ts->meta_cap ? ts->meta_cap * 2 : 8;
		struct polar_meta *n = realloc(ts->meta, cap * sizeof(*n));

		if (!n) {
			free(v);
			return polar_fail(-ENOMEM, "%s: out of memory", src(ts));
		}
		ts->meta = n;
		ts->meta_cap = cap;
	}
	k = strdup(key);
	if (!k) {
		free(v);
		return polar_fail(-ENOMEM, "%s: out of memory", src(ts));
	}
	ts->meta[ts->nmeta].key = k;
	ts->meta[ts->nmeta].value = v;
	ts->nmeta++;
	return 0;
}

const char *polar_tensors_meta(const struct polar_tensors *ts,
			       const char *key)
{
	size_t i;

	if (!ts || !key) {
		polar_null_arg(__func__, ts ? "key" : "ts");
		return NULL;
	}
	for (i = 0; i < ts->nmeta; i++)
		if (!strcmp(ts->meta[i].key, key))
			return ts->meta[i].value;
	return NULL;
}

int polar_tensors_get(const struct polar_tensors *ts, const char *name,
		      enum polar_dtype dtype, const struct polar_tensor **out,
		      unsigned int ndim, ...)
{
	uint64_t want[POLAR_TENSOR_MAX_DIMS];
	char have_s[128], want_s[128];
	const struct polar_tensor *t;
	unsigned int i;
	int same;
	va_list ap;

	polar_clear_error();
	POLAR_NONNULL(__func__, out);
	*out = NULL;
	POLAR_NONNULL(__func__, ts);
	POLAR_NONNULL(__func__, name);
	if (ndim > POLAR_TENSOR_MAX_DIMS)
		return polar_fail(-EINVAL, "%s: %s: asked for %u dimensions, "
				  "at most %d", src(ts), name, ndim,
				  POLAR_TENSOR_MAX_DIMS);
	va_start(ap, ndim);
	for (i = 0; i < ndim; i++) {
		int d = va_arg(ap, int);

		want[i] = d < 0 ? 0 : (uint64_t)d;
	}
	va_end(ap);
	t = polar_tensors_find(ts, name);
	if (!t)
		return polar_fail(-ENOENT, "%s: no tensor %s", src(ts), name);
	if (t->dtype != dtype)
		return polar_fail(-EINVAL, "%s: %s has dtype %s, expected %s",
				  src(ts), name, polar_dtype_name(t->dtype),
				  polar_dtype_name(dtype) ?
				  polar_dtype_name(dtype) : "?");
	same = t->ndim == ndim;
	for (i = 0; same && i < ndim; i++)
		same = t->shape[i] == want[i];
	if (!same)
		return polar_fail(-EINVAL, "%s: %s has shape %s, expected %s",
				  src(ts), name,
				  shape_str(have_s, sizeof(have_s), t->ndim,
					    t->shape),
				  shape_str(want_s, sizeof(want_s), ndim, want));
	*out = t;
	return 0;
}

/* --- reading ---------------------------------------------------------- */

/* A non-negative JSON integer, as uint64_t. */
static int json_u64(const json_t *v, uint64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -EINVAL;
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

struct span {
	uint64_t begin, end;
	size_t index;
};

static int cmp_span(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return 0;
}

static int parse_meta(struct polar_tensors *ts, json_t *meta)
{
	const char *key;
	json_t *v;
	int ret;

	if (!json_is_object(meta))
		return polar_fail(-EINVAL, "%s: __metadata__ is not an object",
				  src(ts));
	json_object_foreach(meta, key, v) {
		if (!json_is_string(v))
			return polar_fail(-EINVAL, "%s: __metadata__ value of "
					  "\"%s\" is not a string", src(ts),
					  key);
		ret = polar_tensors_set_meta(ts, key, json_string_value(v));
		if (ret)
			return ret;
	}
	return 0;
}

static int parse_tensor(struct polar_tensors *ts, const char *name,
			json_t *entry, const uint8_t *data, size_t dlen,
			struct span *span)
{
	uint64_t shape[POLAR_TENSOR_MAX_DIMS], off[2], count = 0;
	json_t *dt, *sh, *of, *v;
	char shape_s[128];
	const char *dts;
	unsigned int d, ndim;
	size_t i, esize;

	if (!name[0])
		return polar_fail(-EINVAL, "%s: empty tensor name", src(ts));
	if (!json_is_object(entry))
		return polar_fail(-EINVAL, "%s: %s: entry is not an object",
				  src(ts), name);
	dt = json_object_get(entry, "dtype");
	sh = json_object_get(entry, "shape");
	of = json_object_get(entry, "data_offsets");
	if (!dt)
		return polar_fail(-EINVAL, "%s: %s: missing dtype", src(ts),
				  name);
	if (!sh)
		return polar_fail(-EINVAL, "%s: %s: missing shape", src(ts),
				  name);
	if (!of)
		return polar_fail(-EINVAL, "%s: %s: missing data_offsets",
				  src(ts), name);
	if (!json_is_string(dt))
		return polar_fail(-EINVAL, "%s: %s: dtype is not a string",
				  src(ts), name);
	dts = json_string_value(dt);
	for (d = 0; d < NDTYPES; d++)
		if (!strcmp(dts, dtypes[d].name))
			break;
	if (d == NDTYPES)
		return polar_fail(-EINVAL, "%s: %s: unknown dtype \"%s\" (want "
				  "F32, I8, U8 or I32)", src(ts), name, dts);
	esize = dtypes[d].size;
	if (!json_is_array(sh))
		return polar_fail(-EINVAL, "%s: %s: shape is not an array",
				  src(ts), name);
	if (json_array_size(sh) > POLAR_TENSOR_MAX_DIMS)
		return polar_fail(-EINVAL, "%s: %s: shape has %zu dimensions, "
				  "at most %d supported", src(ts), name,
				  json_array_size(sh), POLAR_TENSOR_MAX_DIMS);
	ndim = (unsigned int)json_array_size(sh);
	json_array_foreach(sh, i, v) {
		if (json_u64(v, &shape[i]))
			return polar_fail(-EINVAL, "%s: %s: shape[%zu] is not a "
					  "non-negative integer", src(ts), name,
					  i);
	}
	if (!json_is_array(of) || json_array_size(of) != 2 ||
	    json_u64(json_array_get(of, 0), &off[0]) ||
	    json_u64(json_array_get(of, 1), &off[1]))
		return polar_fail(-EINVAL, "%s: %s: data_offsets is not "
				  "[begin, end] of non-negative integers",
				  src(ts), name);
	if (off[0] > off[1])
		return polar_fail(-EINVAL, "%s: %s: data_offsets [%llu,%llu] "
				  "end before begin", src(ts), name,
				  (unsigned long long)off[0],
				  (unsigned long long)off[1]);
	if (off[1] > dlen)
		return polar_fail(-EINVAL, "%s: %s: data_offsets [%llu,%llu] "
				  "out of range (data is %zu bytes)", src(ts),
				  name, (unsigned long long)off[0],
				  (unsigned long long)off[1], dlen);
	if (shape_count(ndim, shape, &count) ||
	    count * esize != off[1] - off[0])
		return polar_fail(-EINVAL, "%s: %s: shape %s of %s needs %llu "
				  "bytes, data_offsets [%llu,%llu] hold %llu",
				  src(ts), name,
				  shape_str(shape_s, sizeof(shape_s), ndim,
					    shape), dts,
				  (unsigned long long)(count * esize),
				  (unsigned long long)off[0],
				  (unsigned long long)off[1],
				  (unsigned long long)(off[1] - off[0]));
	span->begin = off[0];
	span->end = off[1];
	return add_tensor(ts, name, (enum polar_dtype)d, ndim, shape,
			  data + off[0], count);
}

int polar_tensors_parse(const void *buf, size_t len, const char *source,
			struct polar_tensors *ts)
{
	const uint8_t *p = buf, *data;
	struct span *spans = NULL;
	uint64_t hlen = 0;
	json_error_t jerr;
	const char *key;
	json_t *root, *v;
	size_t i, dlen, nspan = 0;
	int ret = 0;

	polar_clear_error();
	POLAR_NONNULL(__func__, ts);
	polar_tensors_init(ts);
	POLAR_NONNULL(__func__, buf);
	snprintf(ts->source, sizeof(ts->source), "%s", source ? source : "");
	if (len < 8)
		return polar_fail(-EINVAL, "%s: truncated: %zu bytes, shorter "
				  "than the 8-byte header length", src(ts),
				  len);
	for (i = 0; i < 8; i++)
		hlen |= (uint64_t)p[i] << (8 * i);
	if (hlen > len - 8)
		return polar_fail(-EINVAL, "%s: header length %llu beyond the "
				  "end of the file (%zu bytes follow it)",
				  src(ts), (unsigned long long)hlen, len - 8);
	root = json_loadb((const char *)p + 8, (size_t)hlen,
			  JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return polar_fail(-EINVAL, "%s: invalid JSON header at byte "
				  "%d (line %d, column %d): %s", src(ts),
				  jerr.position, jerr.line, jerr.column,
				  jerr.text);
	if (!json_is_object(root)) {
		ret = polar_fail(-EINVAL, "%s: JSON header is not an object",
				 src(ts));
		goto out;
	}
	data = p + 8 + hlen;
	dlen = len - 8 - (size_t)hlen;
	spans = calloc(json_object_size(root) + 1, sizeof(*spans));
	if (!spans) {
		ret = polar_fail(-ENOMEM, "%s: out of memory", src(ts));
		goto out;
	}
	json_object_foreach(root, key, v) {
		if (!strcmp(key, "__metadata__")) {
			ret = parse_meta(ts, v);
		} else {
			ret = parse_tensor(ts, key, v, data, dlen,
					   &spans[nspan]);
			spans[nspan].index = ts->count - 1;
			nspan++;
		}
		if (ret)
			goto out;
	}
	/* Empty tensors occupy no bytes and overlap nothing. */
	qsort(spans, nspan, sizeof(*spans), cmp_span);
	for (i = 1; i < nspan; i++) {
		size_t j = i - 1;

		if (spans[i].begin == spans[i].end)
			continue;
		while (j > 0 && spans[j].begin == spans[j].end)
			j--;
		if (spans[j].begin != spans[j].end &&
		    spans[i].begin < spans[j].end) {
			ret = polar_fail(-EINVAL, "%s: %s: data_offsets "
					 "[%llu,%llu] overlap %s [%llu,%llu]",
					 src(ts),
					 ts->tensors[spans[i].index].name,
					 (unsigned long long)spans[i].begin,
					 (unsigned long long)spans[i].end,
					 ts->tensors[spans[j].index].name,
					 (unsigned long long)spans[j].begin,
					 (unsigned long long)spans[j].end);
			goto out;
		}
	}
out:
	free(spans);
	json_decref(root);
	if (ret) {
		char msg[512];

		/* Keep the message across the frees. */
		snprintf(msg, sizeof(msg), "%s", polar_errmsg());
		polar_tensors_free(ts);
		polar_fail(ret, "%s", msg);
	}
	return ret;
}

int polar_tensors_load(const char *path, struct polar_tensors *ts)
{
	void *buf;
	size_t len;
	int ret;

	polar_clear_error();
	POLAR_NONNULL(__func__, ts);
	polar_tensors_init(ts);
	POLAR_NONNULL(__func__, path);
	ret = polar_read_file(path, &buf, &len);
	if (ret)
		return ret;
	ret = polar_tensors_parse(buf, len, path, ts);
	free(buf);
	return ret;
}

/* --- writing ---------------------------------------------------------- */

static char *header_json(const struct polar_tensors *ts)
{
	json_t *root = json_object(), *meta, *e;
	uint64_t off = 0;
	char *s = NULL;
	size_t i;
	unsigned int d;

	if (!root)
		return NULL;
	if (ts->nmeta) {
		meta = json_object();
		if (json_object_set_new(root, "__metadata__", meta))
			goto out;
		for (i = 0; i < ts->nmeta; i++)
			if (json_object_set_new(meta, ts->meta[i].key,
						json_string(ts->meta[i].value)))
				goto out;
	}
	for (i = 0; i < ts->count; i++) {
		const struct polar_tensor *t = &ts->tensors[i];
		json_t *shape = json_array();

		e = json_object();
		if (json_object_set_new(root, t->name, e) ||
		    json_object_set_new(e, "dtype",
					json_string(dtypes[t->dtype].name)) ||
		    json_object_set_new(e, "shape", shape))
			goto out;
		for (d = 0; d < t->ndim; d++)
			if (json_array_append_new(shape,
				json_integer((json_int_t)t->shape[d])))
				goto out;
		if (json_object_set_new(e, "data_offsets",
					json_pack("[II]", (json_int_t)off,
						  (json_int_t)(off + t->nbytes))))
			goto out;
		off += t->nbytes;
	}
	s = json_dumps(root, JSON_COMPACT);
out:
	json_decref(root);
	return s;
}

int polar_tensors_save(const struct polar_tensors *ts, const char *path)
{
	char tmp[4096], *hdr;
	uint8_t lenbuf[8];
	size_t hlen, pad, i;
	int ret = 0;
	FILE *f;

	polar_clear_error();
	POLAR_NONNULL(__func__, ts);
	POLAR_NONNULL(__func__, path);
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return polar_fail(-ENAMETOOLONG, "%s: path too long", path);
	hdr = header_json(ts);
	if (!hdr)
		return polar_fail(-ENOMEM, "%s: cannot build the JSON header",
				  path);
	hlen = strlen(hdr);
	pad = (8 - (8 + hlen) % 8) % 8;
	for (i = 0; i < 8; i++)
		lenbuf[i] = (uint8_t)((uint64_t)(hlen + pad) >> (8 * i));
	f = fopen(tmp, "wb");
	if (!f) {
		ret = polar_fail(-errno, "%s: cannot create: %s", tmp,
				 strerror(errno));
		free(hdr);
		return ret;
	}
	if (fwrite(lenbuf, 1, 8, f) != 8 || fwrite(hdr, 1, hlen, f) != hlen ||
	    fwrite("        ", 1, pad, f) != pad)
		ret = -EIO;
	for (i = 0; !ret && i < ts->count; i++)
		if (fwrite(ts->tensors[i].data, 1, ts->tensors[i].nbytes, f) !=
		    ts->tensors[i].nbytes)
			ret = -EIO;
	if (fclose(f) && !ret)
		ret = -EIO;
	free(hdr);
	if (!ret && rename(tmp, path))
		ret = -errno;
	if (ret) {
		int e = -ret;

		remove(tmp);
		return polar_fail(ret, "%s: cannot write: %s", path,
				  strerror(e));
	}
	return 0;
}
