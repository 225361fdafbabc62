#!/usr/bin/env python3
"""Brown corpus Form C (tagged) -> plain text, one document per file.

Each input file holds one document: blocks separated by blank lines are
paragraphs, each non-empty line in a block is a sentence of `word/tag` tokens.
Tags are stripped at the last '/', so 'Atlanta's/np$' -> "Atlanta's" and
'1/2/cd' -> '1/2'. Output: paragraphs separated by a blank line, one sentence per
line, tokens separated by single spaces. Words are counted as whitespace tokens
(punctuation included), the usual Brown word count.
"""
import os
import re
import sys

DOC = re.compile(r"^c[a-r]\d\d$")


def strip_tags(line):
    words = []
    for tok in line.split():
        word, sep, _tag = tok.rpartition("/")
        words.append(word if sep else tok)
    return words


def convert(src, dst):
    os.makedirs(dst, exist_ok=True)
    docs = sorted(f for f in os.listdir(src) if DOC.match(f))
    total_words = 0
    for name in docs:
        with open(os.path.join(src, name), encoding="ascii") as f:
            blocks = re.split(r"\n\s*\n", f.read())
        paragraphs = []
        for block in blocks:
            sentences = [" ".join(strip_tags(l)) for l in block.splitlines() if l.strip()]
            if sentences:
                paragraphs.append("\n".join(sentences))
                total_words += sum(len(s.split()) for s in sentences)
        with open(os.path.join(dst, name + ".txt"), "w", encoding="utf-8") as f:
            f.write("\n\n".join(paragraphs) + "\n")
    summary = f"{len(docs)} documents, {total_words} words"
    with open(os.path.join(dst, ".complete"), "w") as f:
        f.write(summary + "\n")
    print(f"brown_to_text: {summary} -> {dst}")


if __name__ == "__main__":
    convert(sys.argv[1], sys.argv[2])
