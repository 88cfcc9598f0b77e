// SPDX-License-Identifier: GPL-2.0-only
/*
 * polar_accel: buffer objects. BOs are GEM shmem objects. Their pages are
 * pinned and DMA-mapped for the device by the first job that uses them
 * (drm_gem_shmem_get_pages_sgt) and stay so until the BO is freed: jobs
 * then cost no mapping work, at the price of pinned memory.
 */

#include <drm/drm_file.h>
#include <drm/drm_gem.h>
#include <drm/drm_gem_shmem_helper.h>
#include <drm/drm_vma_manager.h>

#include "polar_accel_drv.h"
#include "drm/polar_accel.h"

int polar_bo_create_ioctl(struct drm_device *drm, void *data,
			  struct drm_file *file)
{
	struct drm_polar_accel_bo_create *args = data;
	struct drm_gem_shmem_object *shmem;
	int ret;

	if (args->flags || !args->size ||
	    args->size > DRM_POLAR_ACCEL_MAX_BO_SIZE)
		return -EINVAL;

	shmem = drm_gem_shmem_create(drm, PAGE_ALIGN(args->size));
	if (IS_ERR(shmem))
		return PTR_ERR(shmem);
	ret = drm_gem_handle_create(file, &shmem->base, &args->handle);
	/* The handle holds the reference now (or creation failed). */
	drm_gem_object_put(&shmem->base);
	return ret;
}

int polar_bo_info_ioctl(struct drm_device *drm, void *data,
			struct drm_file *file)
{
	struct drm_polar_accel_bo_info *args = data;
	struct drm_gem_object *obj;
	int ret;

	if (args->pad)
		return -EINVAL;
	obj = drm_gem_object_lookup(file, args->handle);
	if (!obj)
		return -ENOENT;
	ret = drm_gem_create_mmap_offset(obj);
	if (!ret) {
		args->size = obj->size;
		args->mmap_offset = drm_vma_node_offset_addr(&obj->vma_node);
	}
	drm_gem_object_put(obj);
	return ret;
}
