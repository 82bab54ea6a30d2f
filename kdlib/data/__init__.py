"""Dataset discovery, format loaders and on-device batching."""

from .splits import DataNotFoundError, CorruptDataError, ImageSplits, carve_validation  # noqa: F401
from .device_loader import ComposeBatch, DeviceLoader, RandomAffine, RandomCropFlip  # noqa: F401
