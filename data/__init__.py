"""Training data: FFJORD's 2-D toy densities and MNIST / Fashion-MNIST / SVHN as resident uint8 tensors."""
from data.images import (IMAGE_DATASETS, BatchIterator, DatasetError, DatasetNotFoundError, ImageSplits,
                         load_image_dataset, to_float)
from data.toy import TOY_DATASETS, sample_toy

__all__ = ["IMAGE_DATASETS", "BatchIterator", "DatasetError", "DatasetNotFoundError", "ImageSplits",
           "load_image_dataset", "to_float", "TOY_DATASETS", "sample_toy"]
