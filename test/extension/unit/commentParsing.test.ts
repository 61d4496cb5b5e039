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

test("comments that read like requirements get a CodeLens without being selected; others do not", async () => {
  const { findRequirementBlocks, looksLikeRequirement } = await import("../../../extension/src/commentParsing");
  const python = [
    "# Copyright 2024 ACME. Licensed under the Apache License, Version 2.0.",
    "import numpy as np",
    "",
    "# Read a temperature sensor every second and warn when it overheats",
    "",
    "# TODO: read the temperature sensor and report errors to the data logger",
    "# x = read_sensor(port=3)",
    "# y = np.mean(x)",
    "",
    "def helper(a, b):",
    '    """Add two numbers.',
    "",
    "    Args:",
    "        a: the first sensor reading",
    '    """',
    "    return a + b",
    "",
    "# small helper",
    '"""',
    "Count steps from a wrist accelerometer signal",
    "and report them every minute.",
    '"""',
  ].join("\n");
  const found = findRequirementBlocks(python, "python").map((block) => block.startLine);
  assert.deepEqual(found, [3, 18], "the temperature comment and the step-counting docstring, nothing else");
  const c = ["// Detect heartbeats in a single-lead ECG and report the heart rate", "int main(void) { return 0; }", "/* SPDX-License-Identifier: MIT */", "// GPIoT: blink"].join("\n");
  assert.deepEqual(findRequirementBlocks(c, "c").map((block) => block.startLine), [0, 3], "a marked comment counts however short");
  assert.equal(looksLikeRequirement({ startLine: 0, endLine: 0, style: "hash", indent: "", text: "loop over the items and sum them" }), false, "no sensor, signal or device");
});
