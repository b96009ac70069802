"""XMP sidecars: valid XMP, tags in dc:subject and digiKam:TagsList, nothing of the user's lost, idempotent."""
from __future__ import annotations

import os
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from clipphotos.xmp import XmpError, merge_tags, read_tags, sidecar_path, write_tags

NS = {"x": "adobe:ns:meta/", "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
      "dc": "http://purl.org/dc/elements/1.1/", "digiKam": "http://www.digikam.org/ns/1.0/",
      "xmp": "http://ns.adobe.com/xap/1.0/", "darktable": "http://darktable.sf.net/",
      "my": "http://example.com/my-app/1.0/"}

DARKTABLE_SIDECAR = b"""<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:darktable="http://darktable.sf.net/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:my="http://example.com/my-app/1.0/"
   xmp:Rating="4"
   darktable:history_end="2"
   my:note="first line&#10;second &amp; last">
   <!-- edited in darktable -->
   <dc:subject>
    <rdf:Bag>
     <rdf:li>holiday</rdf:li>
     <rdf:li>Grandma</rdf:li>
    </rdf:Bag>
   </dc:subject>
   <darktable:history>
    <rdf:Seq>
     <rdf:li darktable:operation="exposure" darktable:enabled="1" darktable:params="0000803f"/>
     <rdf:li darktable:operation="colorin" darktable:enabled="1" darktable:params="gz12eJxjZBgFo2AU"/>
    </rdf:Seq>
   </darktable:history>
   <my:workflow my:stage="culled">kept &lt;3</my:workflow>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def items(root: ET.Element, prop: str) -> list[str]:
    return [li.text for li in root.iterfind(f".//rdf:Description/{prop}//rdf:li", NS)]


def test_new_sidecar_is_xmp_with_both_tag_lists(tmp_path):
    photo = tmp_path / "IMG_0001.JPG"
    photo.write_bytes(b"jpeg bytes")
    assert write_tags(photo, ["red", "star"])
    sidecar = tmp_path / "IMG_0001.JPG.xmp"
    assert sidecar_path(photo) == sidecar and sidecar.exists()
    root = ET.parse(sidecar).getroot()
    assert root.tag == "{adobe:ns:meta/}xmpmeta"
    assert root.find("rdf:RDF/rdf:Description", NS) is not None
    assert root.find(".//dc:subject/rdf:Bag", NS) is not None
    assert root.find(".//digiKam:TagsList/rdf:Seq", NS) is not None
    assert items(root, "dc:subject") == ["red", "star"]
    assert items(root, "digiKam:TagsList") == ["red", "star"]
    assert read_tags(photo) == ["red", "star"]
    assert photo.read_bytes() == b"jpeg bytes"


def test_merge_keeps_every_other_field_of_an_existing_sidecar(tmp_path):
    photo = tmp_path / "DSC_0420.NEF"
    photo.write_bytes(b"raw")
    sidecar_path(photo).write_bytes(DARKTABLE_SIDECAR)
    assert write_tags(photo, ["red", "holiday"])
    text = sidecar_path(photo).read_text("utf-8")
    root = ET.fromstring(text)
    description = root.find("rdf:RDF/rdf:Description", NS)
    assert description.get(f"{{{NS['xmp']}}}Rating") == "4"
    assert description.get(f"{{{NS['darktable']}}}history_end") == "2"
    assert description.get(f"{{{NS['my']}}}note") == "first line\nsecond & last"
    history = root.findall(".//darktable:history/rdf:Seq/rdf:li", NS)
    assert [h.get(f"{{{NS['darktable']}}}operation") for h in history] == ["exposure", "colorin"]
    assert history[1].get(f"{{{NS['darktable']}}}params") == "gz12eJxjZBgFo2AU"
    workflow = root.find(".//my:workflow", NS)
    assert workflow.text == "kept <3" and workflow.get(f"{{{NS['my']}}}stage") == "culled"
    assert "<!-- edited in darktable -->" in text
    assert 'xmlns:darktable="http://darktable.sf.net/"' in text and "<my:workflow" in text  # prefixes kept
    assert items(root, "dc:subject") == ["holiday", "Grandma", "red"]   # theirs first, in place
    assert items(root, "digiKam:TagsList") == ["red", "holiday"]


def test_reexport_is_byte_identical(tmp_path):
    photo = tmp_path / "a.jpg"
    sidecar_path(photo).write_bytes(DARKTABLE_SIDECAR)
    assert write_tags(photo, ["red", "star"])
    first = sidecar_path(photo).read_bytes()
    stamp = sidecar_path(photo).stat().st_mtime_ns
    assert not write_tags(photo, ["red", "star"])
    assert sidecar_path(photo).read_bytes() == first
    assert sidecar_path(photo).stat().st_mtime_ns == stamp
    assert merge_tags(first, ["red", "star"]) == first
    assert merge_tags(merge_tags(None, ["x", "y"]), ["x", "y"]) == merge_tags(None, ["x", "y"])


def test_untagged_photo_leaves_a_foreign_sidecar_untouched(tmp_path):
    photo = tmp_path / "a.jpg"
    sidecar_path(photo).write_bytes(DARKTABLE_SIDECAR)
    assert not write_tags(photo, [])
    assert sidecar_path(photo).read_bytes() == DARKTABLE_SIDECAR


def test_tags_that_no_longer_apply_leave_but_the_users_keywords_stay(tmp_path):
    photo = tmp_path / "a.jpg"
    sidecar_path(photo).write_bytes(DARKTABLE_SIDECAR)
    write_tags(photo, ["red", "holiday", "star"])
    write_tags(photo, ["blue"])
    root = ET.parse(sidecar_path(photo)).getroot()
    # "holiday" was the user's before ClipPhotos came: it stays although the label no longer applies.
    assert items(root, "dc:subject") == ["holiday", "Grandma", "blue"]
    write_tags(photo, [])
    root = ET.parse(sidecar_path(photo)).getroot()
    assert items(root, "dc:subject") == ["holiday", "Grandma"]
    assert root.find(".//darktable:history", NS) is not None


def test_odd_names_round_trip(tmp_path):
    photo = tmp_path / "b.png"
    tags = ["café", "日本の旅", "R&D <lab>", 'say "cheese"', "Places/Beach"]
    write_tags(photo, tags)
    assert read_tags(photo) == tags
    assert not write_tags(photo, tags)


def test_xpacket_wrapper_and_other_descriptions_are_kept(tmp_path):
    photo = tmp_path / "c.jpg"
    data = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description rdf:about="" xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Make="Canon"/>'
            '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">'
            '<dc:subject><rdf:Bag><rdf:li>old</rdf:li></rdf:Bag></dc:subject></rdf:Description>'
            '</rdf:RDF></x:xmpmeta>\n<?xpacket end="w"?>').encode()
    sidecar_path(photo).write_bytes(data)
    write_tags(photo, ["new"])
    out = sidecar_path(photo).read_bytes()
    assert out.startswith('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'.encode())
    assert out.rstrip().endswith(b'<?xpacket end="w"?>')
    root = ET.fromstring(out)
    descriptions = root.findall("rdf:RDF/rdf:Description", NS)
    assert len(descriptions) == 2 and descriptions[0].get("{http://ns.adobe.com/tiff/1.0/}Make") == "Canon"
    assert items(root, "dc:subject") == ["old", "new"]


def test_a_broken_sidecar_is_left_alone(tmp_path):
    photo = tmp_path / "d.jpg"
    for broken in (b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><unclosed>", b"<html><body>not xmp</body></html>"):
        sidecar_path(photo).write_bytes(broken)
        with pytest.raises(XmpError):
            write_tags(photo, ["red"])
        assert sidecar_path(photo).read_bytes() == broken
    assert [p.name for p in tmp_path.iterdir()] == ["d.jpg.xmp"]


def test_write_is_atomic_and_keeps_permissions(tmp_path, monkeypatch):
    photo = tmp_path / "e.jpg"
    sidecar = sidecar_path(photo)
    sidecar.write_bytes(DARKTABLE_SIDECAR)
    os.chmod(sidecar, 0o640)

    def fail(*args):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        write_tags(photo, ["red"])
    assert sidecar.read_bytes() == DARKTABLE_SIDECAR
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.jpg.xmp"]   # no temporary file left behind
    monkeypatch.undo()
    write_tags(photo, ["red"])
    assert stat.S_IMODE(sidecar.stat().st_mode) == 0o640
    assert read_tags(Path(str(sidecar))) == ["holiday", "Grandma", "red"]
