"""Zips Lambda binaries built for this machine into cargo lambda's layout,
<out>/<function>/bootstrap.zip, each holding the binary as an executable
`bootstrap`. The emulator runs bootstraps as host processes, so host builds
are what it needs; AWS needs `cargo lambda build --arm64` instead.

usage: package_functions.py BIN_DIR OUT_DIR FUNCTION..."""
import io
import os
import stat
import sys
import zipfile


def package(binary):
    """The deployment package of one binary, as bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = (stat.S_IFREG | 0o755) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(binary, "rb") as f:
            archive.writestr(info, f.read())
    return buffer.getvalue()


def main(bin_dir, out_dir, functions):
    for name in functions:
        binary = os.path.join(bin_dir, name)
        if not os.path.isfile(binary):
            sys.exit(f"error: {binary} is missing; build it with: cargo build -p updraft-functions --bins")
        os.makedirs(os.path.join(out_dir, name), exist_ok=True)
        with open(os.path.join(out_dir, name, "bootstrap.zip"), "wb") as f:
            f.write(package(binary))


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
