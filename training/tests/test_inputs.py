"""Records, rendering with the loss on the answer only, the fit estimate, and batch mixing."""

import json
import os
import random
import tempfile
import unittest

from gpiot_training.events import TrainingError
from gpiot_training.fit import Shape, check_fit, read_shape
from gpiot_training.formats import encode_record, paper_answer, paper_prompt
from gpiot_training.pect import PectConfig
from gpiot_training.records import check_roles, parse_record, read_records
from gpiot_training.tiny import build_tokenizer
from gpiot_training.trainer import Example, interleave


def record(role="td", split="train", answer='{"subTasks": []}', fmt="json", **changes):
    raw = {
        "id": "ab" * 32,
        "role": role,
        "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}, {"role": "assistant", "content": answer}],
        "format": fmt,
        "source": {"kind": "synthetic"},
        "augmentation": None,
        "split": split,
    }
    raw.update(changes)
    return raw


class Records(unittest.TestCase):
    def write(self, lines: list[str]) -> str:
        handle = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8")
        handle.write("\n".join(lines))
        handle.close()
        self.addCleanup(os.remove, handle.name)
        return handle.name

    def test_a_valid_file_reads_back(self):
        path = self.write([json.dumps(record()), "", json.dumps(record(role="cg", split="validation"))])
        records = read_records(path)
        self.assertEqual([r.role for r in records], ["td", "cg"])
        self.assertEqual(records[1].line, 3)
        self.assertEqual(records[0].answer, '{"subTasks": []}')

    def test_bad_records_are_named_with_their_line(self):
        cases = [
            ([""], "holds no records"),
            (["{not json"], "line 1: not valid JSON"),
            ([json.dumps(record()), json.dumps(record(role="xx"))], 'line 2: "role" is "xx"'),
            ([json.dumps(record(split="dev"))], '"split" is "dev"'),
            ([json.dumps(record(id="NOT-HEX"))], "hex content hash"),
            (
                [json.dumps(record(messages=[{"role": "user", "content": "U"}, {"role": "user", "content": "A"}]))],
                "last message must be the assistant",
            ),
            ([json.dumps(record(answer="   "))], "answer is empty"),
            (
                [json.dumps(record(fmt="paper", messages=[{"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}]))],
                "exactly system, user, assistant",
            ),
        ]
        for lines, message in cases:
            with self.assertRaises(TrainingError) as caught:
                read_records(self.write(lines))
            self.assertIn(message, str(caught.exception))
            self.assertEqual(caught.exception.exit_code, 2)

    def test_a_missing_file_is_named(self):
        with self.assertRaisesRegex(TrainingError, "does not exist"):
            read_records("/nonexistent/records.jsonl")

    def test_roles_must_match_the_run(self):
        records = [parse_record(record(), "x", 1), parse_record(record(role="rt"), "x", 2), parse_record(record(role="cg"), "x", 3)]
        with self.assertRaisesRegex(TrainingError, 'line 2: a record for role "rt", but this run trains td, cg'):
            check_roles(records, ("td", "cg"), "x")
        with self.assertRaisesRegex(TrainingError, 'no training records .* for role "cg"'):
            check_roles([records[0], parse_record(record(role="cg", split="test"), "x", 4)], ("td", "cg"), "x")
        with self.assertRaisesRegex(TrainingError, "mixes prompt formats"):
            check_roles([records[0], parse_record(record(fmt="paper"), "x", 5), records[2]], ("td", "cg"), "x")


class Rendering(unittest.TestCase):
    tokenizer = build_tokenizer()

    def test_json_records_use_the_chat_template_and_carry_loss_on_the_answer_only(self):
        r = parse_record(record(answer='{"a": 1}'), "x", 1)
        encoded = encode_record(self.tokenizer, r, 4096)
        prompt = self.tokenizer.apply_chat_template(r.prompt_messages, tokenize=False, add_generation_prompt=True)
        prompt_ids = self.tokenizer(prompt)["input_ids"]
        self.assertEqual(encoded.input_ids[: len(prompt_ids)], prompt_ids)
        self.assertTrue(all(label == -100 for label in encoded.labels[: len(prompt_ids)]))
        answer_ids = encoded.labels[len(prompt_ids) :]
        self.assertEqual(
            self.tokenizer.decode(answer_ids), '{"a": 1}<|im_end|>', "the answer and the end of turn, nothing else, carry loss"
        )

    def test_paper_records_are_the_authors_llama2_text(self):
        system, user, answer = "You are X.", "  Do Y.  ", "1. Step one"
        self.assertEqual(paper_prompt(system, user), "<s>[INST] <<SYS>>\nYou are X.\n<</SYS>>\n\nDo Y.[/INST]")
        self.assertEqual(paper_answer(answer), " 1. Step one </s>")
        r = parse_record(
            record(
                fmt="paper",
                answer=answer,
                messages=[
                    {"role": "system", "content": system},
                    {"role": "user", "content": user},
                    {"role": "assistant", "content": answer},
                ],
            ),
            "x",
            1,
        )
        encoded = encode_record(self.tokenizer, r, 4096)
        bos = self.tokenizer.bos_token_id
        self.assertEqual(
            encoded.input_ids[:2], [bos, bos], "the tokenizer's BOS, then <s> from the text, as the authors' scripts tokenize it"
        )
        self.assertEqual(self.tokenizer.decode([t for t in encoded.labels if t != -100]), " 1. Step one </s>")

    def test_records_longer_than_max_length_are_cut(self):
        r = parse_record(record(answer="x" * 500), "x", 1)
        encoded = encode_record(self.tokenizer, r, 64)
        self.assertTrue(encoded.truncated)
        self.assertEqual(len(encoded.input_ids), 64)


class Fit(unittest.TestCase):
    def test_a_70b_base_is_refused_on_a_16_gib_device_before_loading(self):
        shape = Shape(hidden=8192, layers=80, heads=64, kv_heads=8, ffn=28672, vocab=32000, tied=False, model_type="llama")
        os.environ["GPIOT_TRAIN_DEVICE_FREE_BYTES"] = str(16 * 1024**3)
        self.addCleanup(os.environ.pop, "GPIOT_TRAIN_DEVICE_FREE_BYTES")
        with self.assertRaises(TrainingError) as caught:
            check_fit(shape, PectConfig(), "cpu", "float32", 4, 4, 2048, False, "sdpa")
        self.assertEqual(caught.exception.exit_code, 8)
        self.assertIn("does not fit this device", str(caught.exception))
        self.assertIn("16.0 GiB is free", str(caught.exception))
        small = Shape(hidden=64, layers=2, heads=4, kv_heads=2, ffn=128, vocab=356, tied=False, model_type="llama")
        self.assertTrue(check_fit(small, PectConfig(), "cpu", "float32", 4, 4, 2048, False, "sdpa")["fits"])

    def test_a_non_llama_base_is_refused(self):
        folder = tempfile.mkdtemp()
        with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as handle:
            json.dump({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}, handle)
        with self.assertRaisesRegex(TrainingError, 'describes a "gpt2" model'):
            read_shape(folder)


class Mixing(unittest.TestCase):
    def test_every_batch_of_a_pect_run_mixes_td_and_cg(self):
        def examples(role, n):
            return [Example(parse_record(record(role=role), "x", i), [1], [1]) for i in range(n)]

        order = interleave({"td": examples("td", 10), "cg": examples("cg", 6)}, random.Random(0))
        self.assertEqual(len(order), 16)
        batches = [order[i : i + 4] for i in range(0, 16, 4)]
        for batch in batches:
            self.assertEqual({e.record.role for e in batch}, {"td", "cg"})
        self.assertEqual(
            order, interleave({"td": examples("td", 10), "cg": examples("cg", 6)}, random.Random(0)), "seeded: the same order every time"
        )


if __name__ == "__main__":
    unittest.main()
