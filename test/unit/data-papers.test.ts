/** Reading papers: PDF through pdf.js, Markdown, text; provenance; cleaning; bad inputs named clearly. */
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { chunkText, corpusChunks, CorpusChunkSchema } from "../../sidecar/src/data/corpus";
import { cleanText, markdownSections, readPaper, readPapers, textSections } from "../../sidecar/src/data/papers";
import { repoRoot } from "../helpers/testModels";

const fixtures = path.join(repoRoot, "test", "fixtures", "data");
let scratch: string;
before(() => (scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-papers-test-"))));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe("papers", () => {
  for (const name of ["wifi-csi-breathing", "ecg-arrhythmia"]) {
    test(`${name}: the PDF (pdf.js) and the Markdown give the same sections and text; the PDF adds pages`, async () => {
      const pdf = await readPaper(path.join(fixtures, "pdf", `${name}.pdf`));
      const markdown = await readPaper(path.join(fixtures, "papers", `${name}.md`));
      assert.equal(pdf.kind, "pdf");
      assert.equal(markdown.kind, "markdown");
      assert.equal(pdf.title, markdown.title);
      assert.deepEqual(
        pdf.sections.map((section) => section.heading),
        markdown.sections.map((section) => section.heading),
      );
      assert.deepEqual(
        pdf.sections.map((section) => section.text),
        markdown.sections.map((section) => section.text),
      );
      assert.ok(pdf.sections.every((section) => section.page === 1 || section.page === 2));
      assert.equal(pdf.sections[0].page, 1);
      assert.equal(pdf.sections.at(-1)!.page, 2);
      assert.ok(markdown.sections.every((section) => section.page === undefined));
      assert.equal(markdown.sections[0].heading, "Abstract");
      assert.ok(!markdown.sections.some((section) => /references/i.test(section.heading)), "references are left out");
      assert.ok(!markdown.sections.some((section) => /IEEE Transactions|SIGCOMM/.test(section.text)));
    });
  }

  test("Markdown headings lose emphasis marks but keep the underscores of names", () => {
    const sections = markdownSections("## scipy.signal.find_peaks\n\ntext\n\n## *Results* and `__init__` of _the_ model\n\nmore\n");
    assert.deepEqual(
      sections.map((section) => section.heading),
      ["", "scipy.signal.find_peaks", "Results and init of the model"],
    );
  });

  test("text files: numbered headings; words broken across lines joined where the text uses them whole", async () => {
    const file = path.join(scratch, "notes.txt");
    writeFileSync(file, "A Step Counter\n\n1. Introduction\n\nWe count steps with an accelero-\nmeter worn on the wrist.\n\n2. Method\n\nPeaks of the accelerometer magnitude above 1.2 g are steps, found in fixed-\npoint arithmetic.\n\nReferences\n\n[1] Someone. 2020.\n");
    const paper = await readPaper(file);
    assert.deepEqual(
      paper.sections.map((section) => [section.heading, section.text]),
      [
        ["1. Introduction", "We count steps with an accelerometer worn on the wrist."],
        ["2. Method", "Peaks of the accelerometer magnitude above 1.2 g are steps, found in fixed-point arithmetic."],
      ],
    );
    assert.equal(cleanText("a band-\npass filter"), "a band-pass filter", "a word the text never uses whole keeps its hyphen");
    assert.equal(cleanText("the detec-\ntion of a detection"), "the detection of a detection");
    assert.equal(textSections("").length, 1);
  });

  test("bad inputs: each error names the file and the problem", async () => {
    const cases: [string, RegExp][] = [
      [path.join(fixtures, "bad", "encrypted.pdf"), /encrypted\.pdf: is encrypted \(it needs a password\)/],
      [path.join(fixtures, "bad", "corrupt.pdf"), /corrupt\.pdf: is not a readable PDF/],
      [path.join(fixtures, "bad", "latin1.txt"), /latin1\.txt: is not valid UTF-8 text \(first invalid byte at offset 14\)/],
    ];
    for (const [file, message] of cases) await assert.rejects(readPaper(file), (error: Error & { code?: string }) => message.test(error.message) && error.code === "DATA_INPUT_INVALID");
    const empty = path.join(scratch, "empty");
    mkdirSync(empty);
    await assert.rejects(readPapers(empty), /empty: holds no papers: put PDF/);
    writeFileSync(path.join(empty, "paper.docx"), "x");
    await assert.rejects(readPapers(empty), /holds no papers \(only 1 file\(s\) of other types\)/);
    await assert.rejects(readPapers(path.join(scratch, "nowhere")), /nowhere: the papers folder does not exist/);
    const blank = path.join(scratch, "blank.md");
    writeFileSync(blank, "# Title only\n\n");
    await assert.rejects(readPaper(blank), /blank\.md: is empty/);
  });

  test("a folder: papers in name order, sub-folders too, other files listed as skipped", async () => {
    const dir = path.join(scratch, "mixed");
    mkdirSync(path.join(dir, "more"), { recursive: true });
    copyFileSync(path.join(fixtures, "pdf", "wifi-csi-breathing.pdf"), path.join(dir, "more", "wifi.pdf"));
    copyFileSync(path.join(fixtures, "papers", "ecg-arrhythmia.md"), path.join(dir, "ecg.md"));
    writeFileSync(path.join(dir, "readme.rtf"), "x");
    const { papers, skipped } = await readPapers(dir);
    assert.deepEqual(
      papers.map((paper) => paper.file),
      ["ecg.md", "more/wifi.pdf"],
    );
    assert.deepEqual(skipped, [path.join(dir, "readme.rtf")]);
  });

  test("corpus chunks: whole paragraphs, bounded size, stable content-hash ids, valid schema", async () => {
    const paper = await readPaper(path.join(fixtures, "papers", "wifi-csi-breathing.md"), "wifi-csi-breathing.md");
    const chunks = paper.sections.flatMap((section) => corpusChunks(section.text, { kind: "paper", file: paper.file, section: section.heading }, 400));
    assert.ok(chunks.length > paper.sections.length);
    for (const chunk of chunks) {
      CorpusChunkSchema.parse(chunk);
      assert.ok(chunk.text.length <= 400, `${chunk.text.length}`);
    }
    assert.deepEqual(
      corpusChunks(paper.sections[0].text, { kind: "paper", file: paper.file }, 400).map((chunk) => chunk.id),
      corpusChunks(paper.sections[0].text, { kind: "paper", file: paper.file }, 400).map((chunk) => chunk.id),
    );
    assert.deepEqual(chunkText("one.\n\ntwo.", 100), ["one.\n\ntwo."]);
  });
});
