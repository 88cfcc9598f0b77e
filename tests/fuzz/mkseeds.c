// SPDX-License-Identifier: MIT
/*
 * mkseeds OUTDIR: writes the fuzzers' seed corpora, generated with the
 * library itself so that nothing binary is committed:
 *   OUTDIR/safetensors/  files written by polar_tensors_save()
 *   OUTDIR/idx/          label and image files, raw and gzip'd
 *   OUTDIR/firmware/     images built by cim_firmware_build() (the real
 *                        build/firmware/polar_cim.fw is added by make)
 *   OUTDIR/onnx/         the residual CNN of tests/unit/onnx_build.h,
 *                        whole and cut short
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "cim_firmware.h"
#include "onnx_build.h"
#include "polar/model.h"

static const char *outdir;

static void die(const char *what)
{
	fprintf(stderr, "mkseeds: %s: %s\n", what, polar_errmsg());
	exit(1);
}

static void mkd(const char *sub)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", outdir, sub);
	if (mkdir(p, 0755) && errno != EEXIST) {
		perror(p);
		exit(1);
	}
}

static void put(const char *name, const void *buf, size_t len, int gz)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", outdir, name);
	if (gz) {
		gzFile f = gzopen(p, "wb");

		if (!f || gzwrite(f, buf, len) != (int)len || gzclose(f) != Z_OK)
			die(p);
	} else {
		FILE *f = fopen(p, "wb");

		if (!f || fwrite(buf, 1, len, f) != len || fclose(f))
			die(p);
	}
}

static void safetensors_seeds(void)
{
	static const float w[2 * 3] = { 1, -2, 3.5f, 0, 0.25f, -1 };
	static const int8_t q[4] = { -8, 7, 0, 1 };
	static const int32_t s = 42;
	uint64_t shape2[2] = { 2, 3 }, shape1[1] = { 4 };
	struct polar_tensors ts;
	char p[512];

	polar_tensors_init(&ts);
	if (polar_tensors_add(&ts, "fc.weight", POLAR_DTYPE_F32, 2, shape2, w) ||
	    polar_tensors_add(&ts, "fc.q", POLAR_DTYPE_I8, 1, shape1, q) ||
	    polar_tensors_add(&ts, "fc.u", POLAR_DTYPE_U8, 1, shape1, q) ||
	    polar_tensors_add(&ts, "step", POLAR_DTYPE_I32, 0, NULL, &s) ||
	    polar_tensors_set_meta(&ts, "format", "polar") ||
	    polar_tensors_set_meta(&ts, "chip.seed", "7"))
		die("polar_tensors_add");
	snprintf(p, sizeof(p), "%s/safetensors/model.safetensors", outdir);
	if (polar_tensors_save(&ts, p))
		die(p);
	polar_tensors_free(&ts);

	polar_tensors_init(&ts);
	snprintf(p, sizeof(p), "%s/safetensors/empty.safetensors", outdir);
	if (polar_tensors_save(&ts, p))
		die(p);
	polar_tensors_free(&ts);
}

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static void idx_seeds(void)
{
	uint8_t lab[8 + 5], img[16 + 3 * 4 * 4];
	size_t i;

	be32(lab, 0x00000801);
	be32(lab + 4, 5);
	for (i = 0; i < 5; i++)
		lab[8 + i] = i;
	be32(img, 0x00000803);
	be32(img + 4, 3);
	be32(img + 8, 4);
	be32(img + 12, 4);
	for (i = 0; i < 3 * 4 * 4; i++)
		img[16 + i] = i * 5;
	/* fuzz_idx reads the first byte's bits 0 and 1 as the expected magic */
	put("idx/labels-idx1-ubyte", lab, sizeof(lab), 0);
	put("idx/images-idx3-ubyte", img, sizeof(img), 0);
	put("idx/labels-idx1-ubyte.gz", lab, sizeof(lab), 1);
	put("idx/images-idx3-ubyte.gz", img, sizeof(img), 1);
	/*
	 * A gzip stream cut short (Z_BUF_ERROR) and one with a wrong CRC
	 * (Z_DATA_ERROR, whose message was once printed after gzclose() had
	 * freed it: a use-after-free).
	 */
	put("idx/truncated.gz", img, sizeof(img), 1);
	put("idx/badcrc.gz", img, sizeof(img), 1);
	{
		char p[512];
		FILE *f;

		snprintf(p, sizeof(p), "%s/idx/truncated.gz", outdir);
		if (truncate(p, 20))
			die(p);
		snprintf(p, sizeof(p), "%s/idx/badcrc.gz", outdir);
		f = fopen(p, "r+b");
		if (!f || fseek(f, -8, SEEK_END) || fputc(0x5a, f) == EOF ||
		    fclose(f))
			die(p);
	}
}

static void firmware_seeds(void)
{
	static uint8_t image[POLAR_CIM_FW_MAX_SIZE];
	struct cim_firmware fw;
	size_t len, i;

	memset(&fw, 0, sizeof(fw));
	fw.version = 1 << 16;
	fw.api_version = POLAR_CIM_FW_API_VERSION;
	if (cim_firmware_build(&fw, image, sizeof(image), &len))
		die("cim_firmware_build (empty)");
	put("firmware/empty.fw", image, len, 0);

	fw.has_codebook = 1;
	for (i = 0; i < 16; i++)
		fw.codebook[i] = (int8_t)(i * 9 - 64);
	fw.sched[0].present = 1;
	fw.sched[0].cutoff = 3;
	fw.sched[0].count = 4;
	fw.sched[0].pairs[0] = (struct cim_fw_pair){ 7, 7 };
	fw.sched[0].pairs[1] = (struct cim_fw_pair){ 7, 6 };
	fw.sched[0].pairs[2] = (struct cim_fw_pair){ 6, 7 };
	fw.sched[0].pairs[3] = (struct cim_fw_pair){ 0, 0 };
	fw.num_calib = 2;
	fw.calib[0] = (struct cim_fw_calib){ 8, 8 << 7 };
	fw.calib[1] = (struct cim_fw_calib){ 16, 16 << 7 };
	if (cim_firmware_build(&fw, image, sizeof(image), &len))
		die("cim_firmware_build (small)");
	put("firmware/small.fw", image, len, 0);
}

/*
 * A small MLP for Fashion-MNIST's 1x28x28 images, as torch.onnx.export
 * writes one (Flatten, Gemm, Relu, Gemm): also the model that
 * tests/packaging.sh gives lib/examples/onnx_predict.c.
 */
static void mlp28_seed(void)
{
	static float w1[32 * 784], b1[32], w2[10 * 32], b2[10];
	Onnx__NodeProto *n;
	struct ob b;
	uint8_t *buf;
	size_t len, i;

	for (i = 0; i < 32 * 784; i++)
		w1[i] = (float)((i * 7919) % 97) / 970.0f - 0.05f;
	for (i = 0; i < 10 * 32; i++)
		w2[i] = (float)((i * 31) % 23) / 46.0f - 0.25f;
	for (i = 0; i < 32; i++)
		b1[i] = 0.01f * (float)(i % 5);
	ob_init(&b, "x", 4, (int64_t[]){ -1, 1, 28, 28 });
	ob_const(&b, "fc1.weight", 2, (int64_t[]){ 32, 784 }, w1);
	ob_const(&b, "fc1.bias", 1, (int64_t[]){ 32 }, b1);
	ob_const(&b, "fc2.weight", 2, (int64_t[]){ 10, 32 }, w2);
	ob_const(&b, "fc2.bias", 1, (int64_t[]){ 10 }, b2);
	ob_node(&b, "Flatten", "/Flatten", "x", "flat");
	n = ob_node(&b, "Gemm", "/fc1/Gemm", "flat,fc1.weight,fc1.bias", "h");
	ob_int(&b, n, "transB", 1);
	ob_node(&b, "Relu", "/Relu", "h", "r");
	n = ob_node(&b, "Gemm", "/fc2/Gemm", "r,fc2.weight,fc2.bias", "logits");
	ob_int(&b, n, "transB", 1);
	ob_output(&b, "logits");
	len = ob_pack(&b, &buf);
	ob_free(&b);
	put("onnx/mlp28.onnx", buf, len, 0);
	free(buf);
}

static void onnx_seeds(void)
{
	struct ob_cnn p;
	struct ob b;
	uint8_t *buf;
	size_t len, i;
	float *all = (float *)&p;

	for (i = 0; i < sizeof(p) / sizeof(float); i++)
		all[i] = (float)((i * 7) % 11) / 8.0f - 0.5f;
	for (i = 0; i < OB_C; i++)
		p.bn[3][i] = 1.0f;
	ob_residual_cnn(&b, &p);
	len = ob_pack(&b, &buf);
	ob_free(&b);
	put("onnx/cnn.onnx", buf, len, 0);
	put("onnx/cnn-cut.onnx", buf, len / 2, 0);
	free(buf);
	mlp28_seed();
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: mkseeds OUTDIR\n");
		return 2;
	}
	outdir = argv[1];
	if (mkdir(outdir, 0755) && errno != EEXIST) {
		perror(outdir);
		return 1;
	}
	mkd("safetensors");
	mkd("idx");
	mkd("firmware");
	mkd("onnx");
	safetensors_seeds();
	idx_seeds();
	firmware_seeds();
	onnx_seeds();
	return 0;
}
