/**
 * Import of the published GPIoT datasets: the fixture was written by the Hugging Face `datasets`
 * package (scripts/make-data-fixtures.py) in the `save_to_disk` layout, and as JSONL and Parquet.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { writeDataset } from "../../sidecar/src/data/dataset";
import { parseLlama2Chat, renderLlama2Chat } from "../../sidecar/src/data/llama2Chat";
import { importPublished, roleFromName } from "../../sidecar/src/data/publishedImport";
import { defaultQualityOptions } from "../../sidecar/src/data/quality";
import { TrainingRecordSchema, type Message } from "../../sidecar/src/data/records";
import { repoRoot } from "../helpers/testModels";

const published = path.join(repoRoot, "test", "fixtures", "data", "published");
const expected = JSON.parse(readFileSync(path.join(published, "expected.json"), "utf8")) as {
  td: { train: (Message[] | null)[]; test: Message[][]; text: { train: string[]; test: string[] } };
  cg: { rows: Message[][]; text: string[] };
};
let scratch: string;
before(() => (scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-import-test-"))));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe("gpiot data import", () => {
  test("save_to_disk DatasetDict (Arrow): exact prompt/answer split, round trip to the same text, unparseable rows counted", async () => {
    const result = await importPublished([path.join(published, "GPIoT_Task_Decomposition")], "auto");
    assert.equal(result.rows, 6);
    const parsedTrain = expected.td.train.filter((messages): messages is Message[] => messages !== null);
    assert.deepEqual(
      result.drafts.map((record) => record.messages),
      [...parsedTrain, ...expected.td.test],
    );
    const texts = [...expected.td.text.train.filter((_, i) => expected.td.train[i] !== null), ...expected.td.text.test];
    assert.deepEqual(
      result.drafts.map((record) => renderLlama2Chat(record.messages)),
      texts,
      "rendered back, each record is the published row byte for byte",
    );
    for (const record of result.drafts) {
      assert.equal(record.role, "td", "the role comes from the dataset's name");
      assert.equal(record.format, "paper");
      assert.equal(record.source.kind, "published");
    }
    assert.deepEqual(result.drafts[0].source, { kind: "published", file: "GPIoT_Task_Decomposition/train/data-00000-of-00001.arrow", section: "row 0" });
    assert.deepEqual(
      result.rejected.map((rejection) => [rejection.reason, rejection.item, rejection.detail]),
      [
        ["unparseable", "GPIoT_Task_Decomposition/train/data-00000-of-00001.arrow row 3", "an [INST] instruction is not closed by [/INST]"],
        ["unparseable", "GPIoT_Task_Decomposition/train/data-00000-of-00001.arrow row 4", "an empty answer"],
      ],
    );
    const written = writeDataset({
      command: "import",
      outFile: path.join(scratch, "td.jsonl"),
      drafts: result.drafts,
      rejected: result.rejected,
      quality: { ...defaultQualityOptions, minPromptChars: 1 },
      corpus: null,
      inputs: {},
      notes: [],
      presetSplits: result.presetSplits,
    });
    assert.deepEqual(
      written.records.map((record) => record.split),
      ["train", "train", "train", "test"],
      "the dataset's own splits are kept",
    );
    assert.equal(written.report.rejected.unparseable, 2);
    const lines = readFileSync(path.join(scratch, "td.jsonl"), "utf8").trim().split("\n");
    assert.deepEqual(
      lines.map((line) => TrainingRecordSchema.parse(JSON.parse(line)).id),
      written.records.map((record) => record.id),
    );
  });

  test("the same rows as save_to_disk Arrow, JSONL and Parquet give the same records", async () => {
    const arrow = await importPublished([path.join(published, "GPIoT_Code_Generation")], "auto");
    const jsonl = await importPublished([path.join(published, "cg.jsonl")], "auto");
    const parquet = await importPublished([path.join(published, "cg.parquet")], "auto");
    assert.deepEqual(
      arrow.drafts.map((record) => record.messages),
      expected.cg.rows,
    );
    for (const other of [jsonl, parquet]) {
      assert.deepEqual(
        other.drafts.map((record) => record.id),
        arrow.drafts.map((record) => record.id),
      );
      assert.deepEqual(other.rejected, []);
    }
    assert.ok(arrow.drafts.every((record) => record.role === "cg"));
    assert.deepEqual(
      arrow.drafts.map((record) => renderLlama2Chat(record.messages)),
      expected.cg.text,
    );
    const forced = await importPublished([path.join(published, "cg.jsonl")], "td");
    assert.ok(forced.drafts.every((record) => record.role === "td"), "--role wins over the name");
  });

  test("a dataset without a data column, a missing path, an unknown file type, an unsupported Parquet codec: errors that name the file", async () => {
    await assert.rejects(importPublished([path.join(repoRoot, "test", "fixtures", "data", "bad", "no-data-column")], "auto"), /no-data-column\/data-00000-of-00001\.arrow: has no `data` column \(its columns: text\)/);
    await assert.rejects(importPublished([path.join(scratch, "absent")], "auto"), /absent: does not exist/);
    await assert.rejects(importPublished([path.join(repoRoot, "test", "fixtures", "data", "bad", "corrupt.pdf")], "auto"), /corrupt\.pdf: is not an \.arrow, \.jsonl or \.parquet file/);
    await assert.rejects(importPublished([path.join(published, "expected.json")], "auto"), /expected\.json: has no row with a `data` text field/);
    await assert.rejects(importPublished([path.join(repoRoot, "test", "fixtures", "data", "bad", "cg-zstd.parquet")], "auto"), /cg-zstd\.parquet: is not a readable Parquet file \(.*ZSTD\); snappy-compressed and uncompressed files are supported/);
  });

  test("Llama-2 chat parsing: multi-turn, no system block, and rows it refuses", () => {
    const multi = "<s>[INST] <<SYS>>\nsys\n<</SYS>>\n\nfirst [/INST] one </s><s>[INST] second [/INST] two </s>";
    const parsed = parseLlama2Chat(multi);
    assert.ok(parsed.ok);
    assert.deepEqual(parsed.messages, [
      { role: "system", content: "sys" },
      { role: "user", content: "first" },
      { role: "assistant", content: "one" },
      { role: "user", content: "second" },
      { role: "assistant", content: "two" },
    ]);
    assert.equal(renderLlama2Chat(parsed.messages), multi);
    const noSystem = parseLlama2Chat("[INST] Decompose: count steps [/INST] - Sub-Task 1 [Filter]");
    assert.ok(noSystem.ok);
    assert.deepEqual(noSystem.messages.map((message) => message.role), ["user", "assistant"]);
    const code = "[INST] q [/INST] ```python\nx = 1\n```\n\nindented:\n    y";
    assert.ok(parseLlama2Chat(code).ok && (parseLlama2Chat(code) as { messages: Message[] }).messages[1].content === "```python\nx = 1\n```\n\nindented:\n    y", "answers keep their inner layout");
    for (const [row, reason] of [
      ["", "empty row"],
      ["plain text", "no [INST] instruction"],
      ["[INST] a [/INST] b [/INST]", "a [/INST] has no [INST] before it"],
      ["junk [INST] a [/INST] b", "text before the first [INST]"],
      ["[INST] <<SYS>> s [/INST] b", "<<SYS>> is not closed by <</SYS>>"],
      ["[INST]  [/INST] b", "an empty instruction"],
    ] as const) {
      const result = parseLlama2Chat(row);
      assert.ok(!result.ok && result.reason === reason, `${JSON.stringify(row)}: ${JSON.stringify(result)}`);
    }
    assert.equal(roleFromName("/x/GPIoT_Task_Decomposition/train/data.arrow"), "td");
    assert.equal(roleFromName("GPIoT_Code_Generation"), "cg");
    assert.equal(roleFromName("rows.jsonl"), null);
  });
});
