#!/usr/bin/env python3
"""GCIDE (Debian's dict-gcide, dictd format) -> plain text documents.

Input: gcide.index (headword, base64 offset, base64 length per line) and
gcide.dict.dz (dictzip, i.e. gzip). Every distinct (offset, length) range is one
dictionary entry; entries are taken in file order, which is alphabetical.

Cleaning, per entry: the pronunciation between backslashes (\\Ab`di*ca"tion\\) and
respellings in parentheses ((b[a^]sh"[i^]*b...)) and source tags in square brackets
([1913 Webster], [PJC], [WordNet 1.5]) are dropped; ligatures ([ae]) and
cross-reference braces ({Basyle}) become plain letters;
lines wrapped inside a paragraph are joined; whitespace is collapsed. Entries of
the database's own front matter ("00-database-*", the license header) are skipped.

Output: data/gcide/text/<nnnn>.txt, ENTRIES_PER_DOC consecutive entries per
document (one entry per paragraph, paragraphs separated by a blank line), so that
prepare's seeded document split spreads validation and test over the alphabet.
"""
import gzip
import os
import re
import sys

ENTRIES_PER_DOC = 100
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
PRONUNCIATION = re.compile(r"\\[^\\\n]*\\")
SOURCE_TAG = re.compile(r"\[(?:1913 Webster|Webster 1913|PJC|WordNet|Century|MW10|RH|AS|JC|NPD|CIDE)[^\]]*\]")
RESPELLING = re.compile(r"\([^()\s]*[*\"`\[][^()\s]*\)")  # (b[a^]sh"[i^]*b[.a]*z[=oo]k")
LIGATURE = re.compile(r"\[(ae|oe|AE|OE)\]")                  # antenn[ae] -> antennae
CROSS_REF = re.compile(r"[{}]")                                # {Basyle} -> Basyle
SPACES = re.compile(r"\s+")


def b64(s):
    n = 0
    for ch in s:
        n = n * 64 + B64.index(ch)
    return n


def entry_ranges(index_path):
    ranges = set()
    with open(index_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3 or parts[0].startswith("00-database"):
                continue
            ranges.add((b64(parts[1]), b64(parts[2])))
    return sorted(ranges)


def clean(entry):
    entry = SOURCE_TAG.sub(" ", PRONUNCIATION.sub(" ", entry))
    entry = CROSS_REF.sub("", LIGATURE.sub(r"\1", RESPELLING.sub(" ", entry)))
    paragraphs = []
    for block in re.split(r"\n\s*\n", entry):
        text = SPACES.sub(" ", block).strip()
        if text:
            paragraphs.append(text)
    return " ".join(paragraphs)


def convert(dictd_dir, dst):
    ranges = entry_ranges(os.path.join(dictd_dir, "gcide.index"))
    with gzip.open(os.path.join(dictd_dir, "gcide.dict.dz"), "rb") as f:
        data = f.read()
    entries = []
    for offset, length in ranges:
        text = clean(data[offset:offset + length].decode("utf-8", errors="replace"))
        if text and "GNU General Public License" not in text:
            entries.append(text)
    os.makedirs(dst, exist_ok=True)
    words = 0
    n_docs = 0
    for start in range(0, len(entries), ENTRIES_PER_DOC):
        chunk = entries[start:start + ENTRIES_PER_DOC]
        words += sum(len(e.split()) for e in chunk)
        with open(os.path.join(dst, f"{n_docs:04d}.txt"), "w", encoding="utf-8") as f:
            f.write("\n\n".join(chunk) + "\n")
        n_docs += 1
    summary = f"{n_docs} documents, {len(entries)} entries, {words} words"
    with open(os.path.join(dst, ".complete"), "w") as f:
        f.write(summary + "\n")
    print(f"gcide_to_text: {summary} -> {dst}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: gcide_to_text.py DICTD_DIR OUT_DIR")
    convert(sys.argv[1], sys.argv[2])
