/* SPDX-License-Identifier: MIT */
/*
 * Models from ONNX files (https://onnx.ai), as torch.onnx.export and other
 * frameworks write them: the graph becomes a struct polar_model (polar/nn.h)
 * whose conv2d and linear layers the device and the host paths polarize
 * like the built-in models'.
 *
 * Supported operators (domain "ai.onnx", float tensors, one graph input of
 * shape [N, C, H, W] or [N, F] with any batch N, one graph output):
 *   Conv                 square kernel, equal strides and pads,
 *                        dilation 1, group 1, optional bias
 *   Gemm                 alpha = beta = 1, transA = 0, either transB
 *   MatMul               by a constant [K, N]; a following Add of a
 *                        constant [N] becomes its bias
 *   BatchNormalization   folded into the Conv, Gemm or MatMul before it
 *   Relu, MaxPool, AveragePool (square window, equal strides and pads,
 *                        ceil_mode 0), GlobalAveragePool
 *   Flatten (axis 1), Reshape to [N, C*H*W], Identity, Dropout
 *   Add                  of two computed tensors of one shape (a residual)
 *   Softmax              over the features of an [N, F] tensor
 *   Constant             (e.g. a Reshape's shape)
 * Nodes that the graph output does not depend on are ignored.
 *
 * Anything else is -EINVAL (-ENOMEM when memory runs out, -errno when the
 * file cannot be read) with a one-line polar_errmsg() naming the file and,
 * where there is one, the node, its operator and the field that is wrong:
 * a file that does not parse as an ONNX ModelProto (e.g. truncated), an
 * operator or attribute not in the list, an initializer whose data does
 * not match its shape or whose shape does not fit the node, a tensor no
 * node, initializer or graph input produces, a graph with a cycle.
 */
#ifndef POLAR_ONNX_H
#define POLAR_ONNX_H

#include <stddef.h>

#include "polar/data.h"
#include "polar/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Reads the ONNX model at path into *m (arch "onnx"; free with
 * polar_model_free()). pre is how the model wants its input made from 8-bit
 * pixels, kept in m->pre; NULL means torchvision's ToTensor, [0, 1].
 */
int polar_model_load_onnx(struct polar_model *m, const char *path,
			  const struct polar_preprocess *pre);

/* The same from a buffer of len bytes; source names it in messages. */
int polar_model_parse_onnx(struct polar_model *m, const void *buf, size_t len,
			   const char *source,
			   const struct polar_preprocess *pre);

#ifdef __cplusplus
}
#endif

#endif /* POLAR_ONNX_H */
