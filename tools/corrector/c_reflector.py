"""ctypes binding of the real, already-built reflector plugin (build/plugins/shapes-reflector.so)
through the plugin ABI (include/assay/{entry,factory,plugin,host,common}.h,
include/assay/ext/reflector.h).  Used to test data.py's Python reflector against the C one,
and as a fast C checker (the reflection carries "pass" and "score").

    r = CReflector()                  # loads the .so, creates plugin "shapes-reflector"
    r.reflect("a red circle", [uint8 (32,32,3) image, ...]) -> [dict, ...]
"""

from __future__ import annotations

import ctypes as C
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
SO = os.path.join(REPO, "build/plugins/shapes-reflector.so")


class Version(C.Structure):
    _fields_ = [("major", C.c_uint32), ("minor", C.c_uint32), ("revision", C.c_uint32)]


class Host(C.Structure):
    pass


class Call(C.Structure):
    _fields_ = [("host", C.POINTER(Host)), ("job_id", C.c_uint64), ("host_data", C.c_void_p)]


GET_EXT_H = C.CFUNCTYPE(C.c_void_p, C.POINTER(Host), C.c_char_p)
LOG = C.CFUNCTYPE(None, C.POINTER(Host), C.POINTER(Call), C.c_uint32, C.c_char_p)
IS_CANCELLED = C.CFUNCTYPE(C.c_bool, C.POINTER(Host), C.POINTER(Call))
REPORT_ERROR = C.CFUNCTYPE(None, C.POINTER(Host), C.POINTER(Call), C.c_char_p)
Host._fields_ = [("abi_version", Version), ("host_data", C.c_void_p), ("name", C.c_char_p),
                 ("version", C.c_char_p), ("get_extension", GET_EXT_H), ("log", LOG),
                 ("is_cancelled", IS_CANCELLED), ("report_error", REPORT_ERROR)]


class Options(C.Structure):
    _fields_ = [("count", C.c_uint32), ("items", C.c_void_p)]


class Image(C.Structure):
    _fields_ = [("width", C.c_uint32), ("height", C.c_uint32), ("stride", C.c_uint32),
                ("pixels", C.c_void_p)]


class TextOut(C.Structure):
    pass


TEXT_SET = C.CFUNCTYPE(None, C.POINTER(TextOut), C.c_uint32, C.c_char_p)
TextOut._fields_ = [("host_data", C.c_void_p), ("set", TEXT_SET)]


class Plugin(C.Structure):
    pass


P_INIT = C.CFUNCTYPE(C.c_int32, C.POINTER(Plugin), C.POINTER(Options))
P_DESTROY = C.CFUNCTYPE(None, C.POINTER(Plugin))
P_GET_EXT = C.CFUNCTYPE(C.c_void_p, C.POINTER(Plugin), C.c_char_p)
Plugin._fields_ = [("desc", C.c_void_p), ("plugin_data", C.c_void_p), ("init", P_INIT),
                   ("destroy", P_DESTROY), ("get_extension", P_GET_EXT)]


class Factory(C.Structure):
    pass


Factory._fields_ = [("get_plugin_count", C.CFUNCTYPE(C.c_uint32, C.POINTER(Factory))),
                    ("get_plugin_descriptor", C.CFUNCTYPE(C.c_void_p, C.POINTER(Factory), C.c_uint32)),
                    ("create_plugin", C.CFUNCTYPE(C.POINTER(Plugin), C.POINTER(Factory), C.POINTER(Host),
                                                  C.c_char_p))]


class Entry(C.Structure):
    _fields_ = [("abi_version", Version), ("init", C.CFUNCTYPE(C.c_bool, C.c_char_p)),
                ("deinit", C.CFUNCTYPE(None)), ("get_factory", C.CFUNCTYPE(C.c_void_p, C.c_char_p))]


REFLECT = C.CFUNCTYPE(C.c_int32, C.POINTER(Plugin), C.POINTER(Call), C.c_char_p, C.c_uint32,
                      C.POINTER(Image), C.c_void_p, C.c_void_p, C.POINTER(TextOut))


class ReflectorExt(C.Structure):
    _fields_ = [("reflect", REFLECT)]


class CReflector:
    def __init__(self, so=SO):
        self.lib = C.CDLL(so)
        entry = Entry.in_dll(self.lib, "assay_entry")
        if entry.abi_version.major != 1:
            raise RuntimeError(f"ABI major {entry.abi_version.major}")
        if not entry.init(so.encode()):
            raise RuntimeError("entry init failed")
        fac = C.cast(entry.get_factory(b"assay.plugin-factory/1"), C.POINTER(Factory))
        self._errors = []
        self._cbs = [GET_EXT_H(lambda h, i: None), LOG(lambda h, c, l, m: None),
                     IS_CANCELLED(lambda h, c: False),
                     REPORT_ERROR(lambda h, c, m: self._errors.append(m.decode()))]
        self.host = Host(Version(1, 1, 0), None, b"corrector-tools", b"0", *self._cbs)
        self.plugin = fac.contents.create_plugin(fac, C.byref(self.host), b"shapes-reflector")
        if not self.plugin:
            raise RuntimeError("create_plugin(shapes-reflector) failed")
        p = self.plugin.contents
        if p.init(self.plugin, C.byref(Options(0, None))) != 0:
            raise RuntimeError("plugin init failed")
        ext = p.get_extension(self.plugin, b"assay.reflector/1")
        if not ext:
            raise RuntimeError("no assay.reflector/1 extension")
        self.ext = C.cast(ext, C.POINTER(ReflectorExt)).contents
        self.call = Call(C.pointer(self.host), 0, None)

    def reflect(self, prompt: str, images):
        imgs = [np.ascontiguousarray(im, dtype=np.uint8) for im in images]
        n = len(imgs)
        arr = (Image * max(n, 1))()
        for i, im in enumerate(imgs):
            h, w, _ = im.shape
            arr[i] = Image(w, h, w * 3, im.ctypes.data)
        results = [None] * n

        def set_(out, i, s):
            results[i] = s.decode()

        cb = TEXT_SET(set_)
        out = TextOut(None, cb)
        self._errors.clear()
        rc = self.ext.reflect(self.plugin, C.byref(self.call), prompt.encode(), n, arr, None, None,
                              C.byref(out))
        if rc != 0:
            raise RuntimeError(f"reflect rc {rc}: {'; '.join(self._errors)}")
        return [json.loads(r) for r in results]


if __name__ == "__main__":
    import sys
    sys.path.insert(0, os.path.join(REPO, "tools/shapes"))
    import world
    r = CReflector()
    rng = np.random.default_rng(0)
    spec = world.parse("a red circle left of a blue square")
    objs = world.scene_from_spec(rng, spec)
    print(r.reflect("a red circle left of a blue square", [world.render(objs), world.render(objs[::-1][:1])]))
