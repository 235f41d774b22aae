"""The factory CA: request parsing, the device certificate profile, the hierarchy, issuance.

Pure core: ``csr`` (untrusted PKCS#10 in, ``ParsedCsr`` out), ``profile`` (IEEE 802.1AR device
certificates), ``hierarchy`` (root and issuing CA), ``verify`` (chains to the root), ``der``
(the few DER bits ``hardwareModuleName`` needs). Edges: ``keys`` (key files and tokens) and
``authority`` (``FactoryCa`` plus loading and creating a workspace's CA).
"""

from birthright.ca.csr import CsrError, ParsedCsr, key_fingerprint, parse_csr
from birthright.ca.hierarchy import init_hierarchy
from birthright.ca.profile import (
    DeviceProfile,
    build_device_certificate,
    parse_hardware_module_name,
)
from birthright.ca.verify import ChainUntrusted, verify_device_chain

__all__ = [
    "ChainUntrusted",
    "CsrError",
    "DeviceProfile",
    "ParsedCsr",
    "build_device_certificate",
    "init_hierarchy",
    "key_fingerprint",
    "parse_csr",
    "parse_hardware_module_name",
    "verify_device_chain",
]
