"""Rendering records into token ids with the loss on the answer only.

- "json": the base model's own chat template (tokenizer.apply_chat_template), as node-llama-cpp
  renders the same messages at inference from the GGUF's template. The prompt is everything up to
  and including the generation prompt; the answer is the rest of the rendered conversation
  (the assistant's text and the template's end-of-turn), tokenized on its own, as the model
  generates it after the prompt.
- "paper": the GPIoT authors' Llama-2 chat text, byte for byte as their published scripts build it:
  "<s>[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user.strip()}[/INST]", tokenized the way their
  scripts tokenize it (the tokenizer's own BOS, then the text with "<s>" read as the BOS token).
  The answer follows as " {answer} </s>". sidecar/src/pipeline/promptFormats/paperFormat.ts renders
  the same text; a test keeps the two equal.
"""

from dataclasses import dataclass

from .events import EXIT_BAD_INPUT, TrainingError
from .records import Record

PAPER_PROMPT = "<s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user}[/INST]"
PAPER_ANSWER = " {answer} </s>"


def paper_prompt(system: str, user: str) -> str:
    return PAPER_PROMPT.format(system=system, user=user.strip())


def paper_answer(answer: str) -> str:
    return PAPER_ANSWER.format(answer=answer.strip())


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    prompt_length: int
    truncated: bool


def _template_texts(tokenizer, record: Record) -> tuple[str, str]:
    if not getattr(tokenizer, "chat_template", None):
        raise TrainingError(
            "NO_CHAT_TEMPLATE",
            'The base model\'s tokenizer has no chat template, so "json" records cannot be rendered as the pipeline prompts them. Use an instruction-tuned base.',
            EXIT_BAD_INPUT,
        )
    prompt = tokenizer.apply_chat_template(record.prompt_messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(
        record.prompt_messages + [{"role": "assistant", "content": record.answer}], tokenize=False, add_generation_prompt=False
    )
    if not full.startswith(prompt) or record.answer not in full[len(prompt) :]:
        raise TrainingError(
            "CHAT_TEMPLATE_UNSUPPORTED",
            "The base model's chat template does not render the conversation as the prompt followed by the answer, so the answer tokens cannot be told apart.",
            EXIT_BAD_INPUT,
        )
    answer = full[len(prompt) :]
    # Nothing after the end of the turn carries loss (some templates add a newline there).
    end = answer.index(record.answer) + len(record.answer)
    eos = tokenizer.eos_token or ""
    if eos and answer[end:].startswith(eos):
        end += len(eos)
    else:
        for special in tokenizer.all_special_tokens:
            if special and answer[end:].startswith(special):
                end += len(special)
                break
    return prompt, answer[:end]


def prompt_text(tokenizer, record: Record) -> str:
    if record.format == "paper":
        return paper_prompt(record.messages[0][1], record.messages[1][1])
    return _template_texts(tokenizer, record)[0]


def encode_prompt(tokenizer, text: str) -> list[int]:
    """The prompt's ids: the tokenizer's BOS (when it adds one) and special tokens in the text read as such."""
    return tokenizer(text, add_special_tokens=True)["input_ids"]


def encode_record(tokenizer, record: Record, max_length: int) -> Encoded:
    if record.format == "paper":
        prompt = paper_prompt(record.messages[0][1], record.messages[1][1])
        answer = paper_answer(record.answer)
    else:
        prompt, answer = _template_texts(tokenizer, record)
    prompt_ids = encode_prompt(tokenizer, prompt)
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    if not answer_ids:
        raise TrainingError("RECORDS_INVALID", f"line {record.line}: the answer tokenizes to nothing", EXIT_BAD_INPUT)
    ids = prompt_ids + answer_ids
    labels = [-100] * len(prompt_ids) + answer_ids
    truncated = len(ids) > max_length
    if truncated:
        ids, labels = ids[:max_length], labels[:max_length]
    return Encoded(ids, labels, len(prompt_ids), truncated)
