"""List the GPU code embedded in a CUDA extension module (no cuobjdump needed).

nvcc stores device code in the ELF section ``.nv_fatbin``: a sequence of fat binaries
(magic 0xBA55ED50), each holding entries of kind 1 (PTX) or 2 (ELF cubin) tagged with
the SM version they were compiled for. Used by the test that catches CUDA builds which
silently ship no GPU code.
"""

from __future__ import annotations

import struct

_FATBIN_MAGIC = 0xBA55ED50
_KINDS = {1: "ptx", 2: "sass"}


def _section(data: bytes, wanted: str) -> bytes | None:
    # ELF64 little-endian: section header table at e_shoff, names in section e_shstrndx.
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise ValueError("not a 64-bit ELF file")
    (e_shoff,) = struct.unpack_from("<Q", data, 0x28)
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i):
        name, _, _, _, off, size = struct.unpack_from("<IIQQQQ", data, e_shoff + i * e_shentsize)
        return name, off, size

    _, str_off, _ = header(e_shstrndx)
    for i in range(e_shnum):
        name, off, size = header(i)
        end = data.index(b"\0", str_off + name)
        if data[str_off + name : end].decode() == wanted:
            return data[off : off + size]
    return None


def embedded_architectures(path: str) -> set[tuple[str, int]]:
    """{("sass", 90), ("ptx", 90), ...} for the device code inside the shared library."""
    data = open(path, "rb").read()
    sec = _section(data, ".nv_fatbin")
    found: set[tuple[str, int]] = set()
    if sec is None:
        return found
    pos = 0
    while pos + 16 <= len(sec):
        magic, _version, hsize, fsize = struct.unpack_from("<IHHQ", sec, pos)
        if magic != _FATBIN_MAGIC:
            pos += 8  # fat binaries are 8-byte aligned; skip padding
            continue
        entry, end = pos + hsize, pos + hsize + fsize
        while entry + 32 <= end:
            kind, _v, ehsize, payload = struct.unpack_from("<HHIQ", sec, entry)
            (sm,) = struct.unpack_from("<I", sec, entry + 28)
            if kind in _KINDS:
                found.add((_KINDS[kind], sm))
            if ehsize == 0:
                break
            entry += ehsize + payload
        pos = end
    return found
