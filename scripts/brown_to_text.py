#!/usr/bin/env python3
"""Brown corpus Form C (tagged) -> plain text, one document per file, and its
part-of-speech tags in a parallel folder.

Each input file holds one document: blocks separated by blank lines are
paragraphs, each non-empty line in a block is a sentence of `word/tag` tokens.
Tags are stripped at the last '/', so 'Atlanta's/np$' -> "Atlanta's" and
'1/2/cd' -> '1/2'. Output: paragraphs separated by a blank line, one sentence per
line, tokens separated by single spaces. Words are counted as whitespace tokens
(punctuation included), the usual Brown word count.

With a third argument, the tags go there: the same files, paragraphs, lines and
word positions, the tag of each word in its place ('np$', 'nn-tl', 'ppss+bem';
'nil' for a token without one). `prepare.tags` reads them (docs/trace.md).
"""
import os
import re
import sys

DOC = re.compile(r"^c[a-r]\d\d$")


def split_tags(line):
    words, tags = [], []
    for tok in line.split():
        word, sep, tag = tok.rpartition("/")
        words.append(word if sep else tok)
        tags.append(tag.lower() if sep and tag else "nil")
    return words, tags


def convert(src, dst, dst_tags=None):
    os.makedirs(dst, exist_ok=True)
    if dst_tags:
        os.makedirs(dst_tags, exist_ok=True)
    docs = sorted(f for f in os.listdir(src) if DOC.match(f))
    total_words = 0
    for name in docs:
        with open(os.path.join(src, name), encoding="ascii") as f:
            blocks = re.split(r"\n\s*\n", f.read())
        paragraphs, tag_paragraphs = [], []
        for block in blocks:
            pairs = [split_tags(l) for l in block.splitlines() if l.strip()]
            if pairs:
                paragraphs.append("\n".join(" ".join(w) for w, _ in pairs))
                tag_paragraphs.append("\n".join(" ".join(t) for _, t in pairs))
                total_words += sum(len(w) for w, _ in pairs)
        with open(os.path.join(dst, name + ".txt"), "w", encoding="utf-8") as f:
            f.write("\n\n".join(paragraphs) + "\n")
        if dst_tags:
            with open(os.path.join(dst_tags, name + ".txt"), "w", encoding="utf-8") as f:
                f.write("\n\n".join(tag_paragraphs) + "\n")
    summary = f"{len(docs)} documents, {total_words} words"
    for folder in [dst] + ([dst_tags] if dst_tags else []):
        with open(os.path.join(folder, ".complete"), "w") as f:
            f.write(summary + "\n")
    print(f"brown_to_text: {summary} -> {dst}")


if __name__ == "__main__":
    convert(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
