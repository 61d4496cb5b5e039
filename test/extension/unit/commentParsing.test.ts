import assert from "node:assert/strict";
import test from "node:test";
import { findCommentBlock, findMarkedBlocks, insertionText, parseRequirement } from "../../../extension/src/commentParsing";

test("Python # comments: the whole block around the line, markers stripped", () => {
  const text = ["import os", "", "    # GPIoT: detect heartbeats in an ECG", "    # and report the heart rate", "x = 1"].join("\n");
  const block = findCommentBlock(text, "python", 3)!;
  assert.equal(block.startLine, 2);
  assert.equal(block.endLine, 3);
  assert.equal(block.indent, "    ");
  assert.equal(block.text, "GPIoT: detect heartbeats in an ECG\nand report the heart rate");
  assert.equal(findCommentBlock(text, "python", 4), undefined, "code is not a comment");
  assert.equal(findCommentBlock("#!/usr/bin/env python3\n", "python", 0), undefined, "a shebang is not a requirement");
});

test("Python docstrings, one-line and multi-line", () => {
  const text = ['"""', "Count steps from a wrist accelerometer.", "", "Report them every minute.", '"""', "def f():", "    r'''Filter the signal.'''", "    pass"].join("\n");
  const block = findCommentBlock(text, "python", 2)!;
  assert.deepEqual([block.startLine, block.endLine, block.style], [0, 4, "docstring"]);
  assert.equal(block.text, "Count steps from a wrist accelerometer.\n\nReport them every minute.");
  const inline = findCommentBlock(text, "python", 6)!;
  assert.deepEqual([inline.startLine, inline.endLine, inline.text, inline.indent], [6, 6, "Filter the signal.", "    "]);
});

test("C and C++: // lines and /* */ blocks", () => {
  const text = ["#include <stdio.h>", "// Read the IMU at 100 Hz", "// and detect falls", "/*", " * Classify gestures", " * on the MCU", " */", "int x; /* trailing */"].join("\n");
  const slashes = findCommentBlock(text, "cpp", 2)!;
  assert.deepEqual([slashes.startLine, slashes.endLine, slashes.text], [1, 2, "Read the IMU at 100 Hz\nand detect falls"]);
  const block = findCommentBlock(text, "c", 5)!;
  assert.deepEqual([block.startLine, block.endLine, block.style, block.text], [3, 6, "block", "Classify gestures\non the MCU"]);
  assert.equal(findCommentBlock(text, "c", 0), undefined);
});

test("marked blocks and requirement parsing", () => {
  const text = ["# GPIoT: Detect heartbeats", "# Constraints: Raspberry Pi 4, <= 200 MB", "x = 1", "# an ordinary comment"].join("\n");
  const blocks = findMarkedBlocks(text, "python");
  assert.equal(blocks.length, 1);
  assert.deepEqual(parseRequirement(blocks[0].text), { requirement: "Detect heartbeats", constraints: "Raspberry Pi 4, <= 200 MB" });
  assert.deepEqual(parseRequirement("TODO(gpiot): count steps"), { requirement: "count steps" });
});

test("inserted code is indented like the comment", () => {
  const block = { startLine: 0, endLine: 0, style: "hash" as const, indent: "    ", text: "x" };
  assert.equal(insertionText(block, "def f():\n    return 1\n\n"), "\n    def f():\n        return 1\n");
});
