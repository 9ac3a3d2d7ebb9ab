#!/usr/bin/env python3
# Builds OUT/qaboxdemo-VERSION-py3-none-any.whl by hand (a zip with the
# package and its dist-info), so the host needs neither pip nor wheel: the
# local package of the dependency-layer test (deps_test.cpp) and of
# scripts/bench/realapp.sh. Its module has VALUE = 42 and VERSION.
#   usage: make_wheel.py OUT VERSION
import base64, hashlib, os, sys, zipfile
out, ver = sys.argv[1], sys.argv[2]
name = "qaboxdemo"
files = {
    name + "/__init__.py": "VALUE = 42\nVERSION = '%s'\n" % ver,
    "%s-%s.dist-info/METADATA" % (name, ver):
        "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, ver),
    "%s-%s.dist-info/WHEEL" % (name, ver):
        "Wheel-Version: 1.0\nGenerator: qabox-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = "%s-%s.dist-info/RECORD" % (name, ver)
lines = []
for path, content in files.items():
    data = content.encode()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    lines.append("%s,sha256=%s,%d" % (path, digest, len(data)))
lines.append(record + ",,")
os.makedirs(out, exist_ok=True)
with zipfile.ZipFile(os.path.join(out, "%s-%s-py3-none-any.whl" % (name, ver)), "w") as z:
    for path, content in files.items():
        z.writestr(path, content)
    z.writestr(record, "\n".join(lines) + "\n")
