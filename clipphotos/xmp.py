"""XMP sidecars: tags written beside a photo (``IMG_0001.JPG.xmp``) for digiKam, darktable, Lightroom.

The photo itself is never opened for writing. A sidecar that already exists belongs to the user
and to other programs: it is merged, not replaced. Every element, attribute, namespace prefix and
comment we do not manage is kept; only ``dc:subject`` and ``digiKam:TagsList`` gain or lose the
tags ClipPhotos manages. Which tags those are is recorded in the sidecar itself
(``clipphotos:ManagedTags``), so a tag that no longer applies is removed while a keyword typed
in another program, even one with the same name as a label, is never touched.

Writes are atomic (a temporary file, fsynced, then renamed), the output is deterministic, and
writing the same tags again leaves the file byte-identical.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

NS_X = "adobe:ns:meta/"
NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_DC = "http://purl.org/dc/elements/1.1/"
NS_DIGIKAM = "http://www.digikam.org/ns/1.0/"
NS_CLIPPHOTOS = "http://ns.clipphotos.org/1.0/"
NS_XML = "http://www.w3.org/XML/1998/namespace"
PREFERRED_PREFIXES = {NS_X: "x", NS_RDF: "rdf", NS_DC: "dc", NS_DIGIKAM: "digiKam", NS_CLIPPHOTOS: "clipphotos",
                      NS_XML: "xml"}

SUBJECT = f"{{{NS_DC}}}subject"
TAGS_LIST = f"{{{NS_DIGIKAM}}}TagsList"
MANAGED = f"{{{NS_CLIPPHOTOS}}}ManagedTags"
DESCRIPTION = f"{{{NS_RDF}}}Description"
LI = f"{{{NS_RDF}}}li"

_XPACKET_BEGIN = re.compile(rb"<\?xpacket\s+begin=[^>]*\?>")
_XPACKET_END = re.compile(rb"<\?xpacket\s+end=[^>]*\?>")


class XmpError(ValueError):
    """A sidecar that is not XMP we can safely merge into (it is left as it is)."""


def sidecar_path(photo: str | os.PathLike[str]) -> Path:
    """The sidecar beside a photo: its full file name plus ``.xmp`` (digiKam's and darktable's way)."""
    photo = Path(photo)
    return photo.with_name(photo.name + ".xmp")


# -- parsing -------------------------------------------------------------------------------


class Sidecar:
    """A parsed XMP document that remembers its namespace prefixes and packet wrapper."""

    def __init__(self, data: bytes | None = None) -> None:
        self.prefixes: dict[str, str] = {}       # uri → prefix, in the order first declared
        self.packet: tuple[bytes, bytes] | None = None
        if data is None:
            self.root = ET.Element(f"{{{NS_X}}}xmpmeta", {f"{{{NS_X}}}xmptk": "ClipPhotos"})
            ET.SubElement(self.root, f"{{{NS_RDF}}}RDF")
        else:
            self._parse(data)
        for uri in (NS_X, NS_RDF, NS_DC, NS_DIGIKAM, NS_CLIPPHOTOS, *_used_namespaces(self.root)):
            self._declare(uri)

    def _parse(self, data: bytes) -> None:
        try:
            for _, (prefix, uri) in ET.iterparse(io.BytesIO(data), events=("start-ns",)):
                if uri not in self.prefixes and prefix not in self.prefixes.values():
                    self.prefixes[uri] = prefix
            builder = ET.TreeBuilder(insert_comments=True, insert_pis=True)
            parser = ET.XMLParser(target=builder)
            parser.feed(data)
            self.root = parser.close()
        except ET.ParseError as exc:
            raise XmpError(f"not well-formed XML ({exc})") from None
        if self._rdf() is None:
            raise XmpError("no rdf:RDF element: not an XMP packet")
        begin, end = _XPACKET_BEGIN.search(data), _XPACKET_END.search(data)
        if begin and end:
            self.packet = (begin.group(0), end.group(0))

    def _declare(self, uri: str) -> None:
        if uri in self.prefixes:
            return
        taken = set(self.prefixes.values())
        base = PREFERRED_PREFIXES.get(uri, "ns")
        prefix, n = base, 1
        while prefix in taken:
            prefix, n = f"{base}{n}", n + 1
        self.prefixes[uri] = prefix

    def _rdf(self) -> ET.Element | None:
        rdf = f"{{{NS_RDF}}}RDF"
        return self.root if self.root.tag == rdf else self.root.find(f".//{rdf}")

    def description(self) -> ET.Element:
        """The rdf:Description holding dc:subject, else the first one, else a new one."""
        rdf = self._rdf()
        assert rdf is not None
        descriptions = rdf.findall(DESCRIPTION)
        for d in descriptions:
            if d.find(SUBJECT) is not None:
                return d
        if descriptions:
            return descriptions[0]
        return ET.SubElement(rdf, DESCRIPTION, {f"{{{NS_RDF}}}about": ""})

    # -- array properties ----------------------------------------------------------------

    def items(self, prop: str) -> list[str]:
        """The texts of an array property (rdf:Bag / rdf:Seq / rdf:Alt) in any rdf:Description."""
        rdf = self._rdf()
        assert rdf is not None
        for d in rdf.findall(DESCRIPTION):
            element = d.find(prop)
            if element is not None:
                return [(li.text or "").strip() for li in element.iter(LI)]
        return []

    def set_items(self, prop: str, values: Sequence[str], container: str) -> None:
        """Replace an array property's items, keeping its element and container; none → no property."""
        rdf = self._rdf()
        assert rdf is not None
        owner = next((d for d in rdf.findall(DESCRIPTION) if d.find(prop) is not None), None)
        if not values:
            if owner is not None:
                owner.remove(owner.find(prop))
            return
        if owner is None:
            element = ET.SubElement(self.description(), prop)
        else:
            element = owner.find(prop)
        box = next((c for c in element if c.tag in {f"{{{NS_RDF}}}{k}" for k in ("Bag", "Seq", "Alt")}), None)
        if box is None:
            box = ET.SubElement(element, f"{{{NS_RDF}}}{container}")
        for li in box.findall(LI):
            box.remove(li)
        for value in values:
            ET.SubElement(box, LI).text = value

    # -- writing -------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        ET.indent(self.root, space=" ")
        body = _Writer(self.prefixes).document(self.root)
        if self.packet is not None:
            return self.packet[0] + b"\n" + body + b"\n" + self.packet[1] + b"\n"
        return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body + b"\n"


class _Writer:
    """Serialises a tree with the document's own prefixes, every namespace declared on the root."""

    def __init__(self, prefixes: dict[str, str]) -> None:
        self.prefixes = prefixes

    def name(self, tag: str) -> str:
        if not tag.startswith("{"):
            return tag
        uri, local = tag[1:].split("}", 1)
        if uri == NS_XML:
            return f"xml:{local}"
        prefix = self.prefixes.get(uri)
        if prefix is None:
            raise XmpError(f"namespace {uri} has no prefix")
        return f"{prefix}:{local}" if prefix else local

    def document(self, root: ET.Element) -> bytes:
        out: list[str] = []
        declarations = [(f"xmlns:{p}" if p else "xmlns", uri) for uri, p in self.prefixes.items() if uri != NS_XML]
        self.element(root, out, declarations)
        return "".join(out).encode("utf-8")

    def element(self, e: ET.Element, out: list[str], declarations: list[tuple[str, str]] = ()) -> None:
        if e.tag is ET.Comment:
            out.append(f"<!--{e.text or ''}-->")
        elif e.tag is ET.ProcessingInstruction:
            out.append(f"<?{e.text or ''}?>")
        else:
            tag = self.name(e.tag)
            attrs = [(self.name(k), v) for k, v in e.attrib.items()]
            out.append("<" + tag + "".join(f" {k}={_quote(v)}" for k, v in [*declarations, *attrs]))
            if e.text or len(e):
                out.append(">" + _escape(e.text or ""))
                for child in e:
                    self.element(child, out)
                out.append(f"</{tag}>")
            else:
                out.append("/>")
        out.append(_escape(e.tail or ""))


def _used_namespaces(root: ET.Element) -> list[str]:
    """Every namespace a tag or attribute uses (one prefix bound to two of them gets a second)."""
    names = [e.tag for e in root.iter() if isinstance(e.tag, str)]
    names += [k for e in root.iter() for k in e.attrib]
    return list(dict.fromkeys(n[1:].split("}", 1)[0] for n in names if n.startswith("{")))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _quote(text: str) -> str:
    escaped = _escape(text).replace('"', "&quot;")
    return '"' + escaped.replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;") + '"'


# -- merging -------------------------------------------------------------------------------


def merge_tags(existing: bytes | None, tags: Sequence[str]) -> bytes:
    """The sidecar with `tags` as ClipPhotos's tags: added, and those it wrote before that no longer apply removed."""
    doc = Sidecar(existing)
    before = {prop: doc.items(prop) for prop in (SUBJECT, TAGS_LIST, MANAGED)}
    managed_before = set(before[MANAGED])
    wanted = list(dict.fromkeys(t for t in tags if t))
    foreign = {k for prop in (SUBJECT, TAGS_LIST) for k in before[prop] if k not in managed_before}
    after = {prop: _updated(before[prop], managed_before, wanted) for prop in (SUBJECT, TAGS_LIST)}
    after[MANAGED] = [t for t in wanted if t not in foreign]
    if existing is not None and after == before:
        return existing   # nothing to change: the file is left exactly as it is
    for prop, container in ((SUBJECT, "Bag"), (TAGS_LIST, "Seq"), (MANAGED, "Bag")):
        doc.set_items(prop, after[prop], container)
    return doc.to_bytes()


def _updated(items: list[str], managed_before: set[str], wanted: list[str]) -> list[str]:
    """Items in place, minus our tags that no longer apply, plus the wanted ones missing."""
    kept = [k for k in items if k not in managed_before or k in wanted]
    return kept + [t for t in wanted if t not in kept]


def read_tags(path: str | os.PathLike[str]) -> list[str]:
    """The keywords (dc:subject) of a sidecar, or of a photo's sidecar."""
    path = Path(path)
    sidecar = path if path.suffix.lower() == ".xmp" else sidecar_path(path)
    return Sidecar(sidecar.read_bytes()).items(SUBJECT) if sidecar.exists() else []


def write_tags(photo: str | os.PathLike[str], tags: Sequence[str]) -> bool:
    """Merge the tags into the photo's sidecar; True when the file changed (False: already up to date)."""
    target = sidecar_path(photo)
    existing = target.read_bytes() if target.exists() else None
    data = merge_tags(existing, tags)
    if data == existing:
        return False
    _atomic_write(target, data, like=Path(photo))
    return True


def _atomic_write(path: Path, data: bytes, like: Path | None = None) -> None:
    """Readers see the old file or the new one, never half of one; the old one's permissions stay,
    and a new sidecar takes the permissions of its photo (`like`): as private as the photo is."""
    if path.exists():
        mode: int | None = path.stat().st_mode & 0o7777
    elif like is not None and like.exists():
        mode = like.stat().st_mode & 0o666
    else:
        mode = None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)   # a new file: the umask applies
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
