"""Writes the test fixtures of `gpiot data` into test/fixtures/data/ (run by hand; the output is committed).

- pdf/<paper>.pdf: the two Markdown papers in papers/ typeset as PDF by hand (raw PDF objects,
  the standard Helvetica fonts, headings larger than body text, several pages), so that the tests
  read a real PDF through pdf.js.
- bad/: an encrypted PDF (needs a password; made with pypdf), a corrupt PDF, a text file that is
  not UTF-8, a dataset saved with `datasets` whose text column is not called `data`, and a
  Parquet file compressed with zstd (only uncompressed and snappy Parquet is read).
- published/: small datasets in the layout of the published GPIoT datasets, made with the
  Hugging Face `datasets` package: a DatasetDict saved with `save_to_disk` (Arrow files with one
  text column `data` holding Llama-2 chat text), the same kind of rows as JSONL and as Parquet,
  two rows that cannot be parsed, and expected.json with the exact messages of every row.

Needs: pip install datasets pypdf
"""

import json
import os
import re
import shutil
import sys
import textwrap

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "data")
PAPERS = ["wifi-csi-breathing", "ecg-arrhythmia"]

PAGE_WIDTH, PAGE_HEIGHT, MARGIN = 612, 792, 64
STYLES = {"title": ("F2", 15, 62), "heading": ("F2", 12.5, 80), "body": ("F1", 10, 100)}


def pdf_text(text):
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def typeset(markdown):
    """Lines of (style, text) for the paper, wrapped to the page width."""
    lines = []
    for block in re.split(r"\n\s*\n", markdown.strip()):
        block = " ".join(block.split())
        if block.startswith("# "):
            style, text = "title", block[2:]
        elif block.startswith("## "):
            style, text = "heading", block[3:]
        else:
            style, text = "body", block
        width = STYLES[style][2]
        if lines:
            lines.append(("gap", ""))
        for line in textwrap.wrap(text, width):
            lines.append((style, line))
    return lines


def build_pdf(lines):
    pages, current, y = [], [], PAGE_HEIGHT - MARGIN
    for style, text in lines:
        if style == "gap":
            y -= 8
            continue
        size = STYLES[style][1]
        if y - size * 1.4 < MARGIN or (style == "heading" and y - 60 < MARGIN):
            pages.append(current)
            current, y = [], PAGE_HEIGHT - MARGIN
        y -= size * 1.4
        current.append((style, text, y))
    pages.append(current)

    objects = []

    def add(body):
        objects.append(body)
        return len(objects)

    catalog = add(None)
    pages_id = add(None)
    regular = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    bold = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>")
    page_ids = []
    for page in pages:
        content = []
        for style, text, y in page:
            font, size, _ = STYLES[style]
            content.append(f"BT /{font} {size} Tf {MARGIN} {y:.1f} Td ({pdf_text(text)}) Tj ET")
        stream = "\n".join(content).encode("latin-1")
        content_id = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        page_ids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] /Resources << /Font << /F1 %d 0 R /F2 %d 0 R >> >> /Contents %d 0 R >>"
                % (pages_id, PAGE_WIDTH, PAGE_HEIGHT, regular, bold, content_id)
            )
        )
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id
    kids = b" ".join(b"%d 0 R" % page for page in page_ids)
    objects[pages_id - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_ids))

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, catalog, xref)
    return bytes(out), len(page_ids)


def llama2(system, user, answer):
    return f"<s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {answer} </s>"


TD_SYSTEM = "You are an expert in IoT system design. Decompose the IoT task into sub-tasks with implementation steps."
CG_SYSTEM = "You are an expert Python programmer for IoT. Write code and documentation for the task specification."

TD_ROWS = [
    (
        "Monitor the breathing rate of a sleeping person from WiFi channel state information.",
        (
            "- Sub-Task 1 [Collect CSI] - [Capture CSI packets and resample them to 20 Hz] - Implementation step 1: log CSI "
            "per packet. Implementation step 2: interpolate onto a uniform grid.\n\n- Sub-Task 2 [Estimate the rate] - "
            "[Find the dominant breathing frequency] - Implementation step 1: band-pass filter 0.1-0.6 Hz. "
            "Implementation step 2: take the STFT peak."
        ),
    ),
    (
        "Count steps from a wrist-worn accelerometer sampled at 50 Hz.",
        (
            "- Sub-Task 1 [Filter] - [Remove gravity and noise] - Implementation step 1: compute the magnitude. "
            "Implementation step 2: low-pass filter at 3 Hz.\n\n- Sub-Task 2 [Detect steps] - [Find step peaks] - "
            "Implementation step 1: find peaks at least 0.3 s apart."
        ),
    ),
    (
        "Detect falls of elderly people from a mmWave radar point cloud.",
        (
            "- Sub-Task 1 [Track height] - [Estimate the body centroid height over time] - Implementation step 1: "
            "cluster the points with DBSCAN.\n\n- Sub-Task 2 [Classify falls] - [Decide whether a fall happened] - "
            "Implementation step 1: threshold the vertical velocity and the final height."
        ),
    ),
]
TD_TEST_ROWS = [
    (
        "Recognise gestures from ultrasound echoes recorded by a smartphone.",
        (
            "- Sub-Task 1 [Extract Doppler] - [Compute the Doppler profile of the echoes] - Implementation step 1: "
            "STFT around 20 kHz.\n\n- Sub-Task 2 [Classify] - [Label the gesture] - Implementation step 1: train a small CNN."
        ),
    ),
]
CG_ROWS = [
    (
        (
            "**Target**\nWrite some code and documentation to band-pass filter an ECG signal.\n\n**Input Specification**\n"
            "- ecg (np.ndarray): the raw signal\n- fs (float): sampling rate in Hz\n\n**Output Specification**\n"
            "- filtered (np.ndarray): the filtered signal"
        ),
        (
            "```python\nfrom scipy.signal import butter, filtfilt\n\n\ndef run(ecg, fs):\n    b, a = butter(4, [5 / (fs / 2), "
            "15 / (fs / 2)], btype='band')\n    return {'filtered': filtfilt(b, a, ecg)}\n```\n\nThe module applies a "
            "fourth-order Butterworth band-pass filter forwards and backwards."
        ),
    ),
    (
        (
            "**Target**\nWrite some code and documentation to compute the RMS of IMU windows.\n\n**Input Specification**\n"
            "- windows (np.ndarray): windows of shape (N, 128)\n\n**Output Specification**\n- rms (np.ndarray): one value per window"
        ),
        (
            "```python\nimport numpy as np\n\n\ndef run(windows):\n    return {'rms': np.sqrt(np.mean(np.square(windows), "
            "axis=1))}\n```\n\nRoot mean square of each window."
        ),
    ),
]
UNPARSEABLE = [
    f"<s>[INST] <<SYS>>\n{TD_SYSTEM}\n<</SYS>>\n\nThis row lost its closing instruction tag and its answer.",
    f"<s>[INST] <<SYS>>\n{TD_SYSTEM}\n<</SYS>>\n\nA question without an answer. [/INST]  </s>",
]


def expected(system, user, answer):
    return [{"role": "system", "content": system}, {"role": "user", "content": user}, {"role": "assistant", "content": answer}]


def main():
    try:
        import datasets
        import pyarrow.parquet as pyarrow_parquet
        from pypdf import PdfReader, PdfWriter
    except ImportError as error:
        sys.exit(f"make-data-fixtures.py needs the datasets and pypdf packages ({error})")

    os.makedirs(os.path.join(ROOT, "pdf"), exist_ok=True)
    for name in PAPERS:
        with open(os.path.join(ROOT, "papers", name + ".md"), encoding="utf-8") as handle:
            data, count = build_pdf(typeset(handle.read()))
        with open(os.path.join(ROOT, "pdf", name + ".pdf"), "wb") as handle:
            handle.write(data)
        print(f"pdf/{name}.pdf: {count} pages")

    bad = os.path.join(ROOT, "bad")
    shutil.rmtree(bad, ignore_errors=True)
    os.makedirs(bad)
    reader = PdfReader(os.path.join(ROOT, "pdf", PAPERS[0] + ".pdf"))
    writer = PdfWriter()
    for page in reader.pages:
        writer.add_page(page)
    writer.encrypt(user_password="secret", owner_password="owner-secret", algorithm="RC4-128")
    with open(os.path.join(bad, "encrypted.pdf"), "wb") as handle:
        writer.write(handle)
    with open(os.path.join(ROOT, "pdf", PAPERS[1] + ".pdf"), "rb") as handle:
        valid = handle.read()
    with open(os.path.join(bad, "corrupt.pdf"), "wb") as handle:
        handle.write(valid[:200] + b"\x00\xff garbage where the objects should be \xfe" * 8)
    with open(os.path.join(bad, "latin1.txt"), "wb") as handle:
        handle.write("Capteur de fr\u00e9quence cardiaque: d\u00e9tection des battements.\n".encode("latin-1"))
    datasets.Dataset.from_dict({"text": [llama2(TD_SYSTEM, TD_ROWS[0][0], TD_ROWS[0][1])]}).save_to_disk(os.path.join(bad, "no-data-column"))

    published = os.path.join(ROOT, "published")
    shutil.rmtree(published, ignore_errors=True)
    os.makedirs(published)
    td_train = [llama2(TD_SYSTEM, user, answer) for user, answer in TD_ROWS] + UNPARSEABLE
    td_test = [llama2(TD_SYSTEM, user, answer) for user, answer in TD_TEST_ROWS]
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict({"data": td_train}), "test": datasets.Dataset.from_dict({"data": td_test})}
    ).save_to_disk(os.path.join(published, "GPIoT_Task_Decomposition"))
    cg = datasets.Dataset.from_dict({"data": [llama2(CG_SYSTEM, user, answer) for user, answer in CG_ROWS]})
    cg.save_to_disk(os.path.join(published, "GPIoT_Code_Generation"))
    cg.to_json(os.path.join(published, "cg.jsonl"), lines=True)
    cg.to_parquet(os.path.join(published, "cg.parquet"))
    pyarrow_parquet.write_table(cg.data.table, os.path.join(bad, "cg-zstd.parquet"), compression="zstd")
    manifest = {
        "td": {
            "train": [expected(TD_SYSTEM, user, answer) for user, answer in TD_ROWS] + [None, None],
            "test": [expected(TD_SYSTEM, user, answer) for user, answer in TD_TEST_ROWS],
            "text": {"train": td_train, "test": td_test},
        },
        "cg": {"rows": [expected(CG_SYSTEM, user, answer) for user, answer in CG_ROWS], "text": list(cg["data"])},
        "datasets": datasets.__version__,
    }
    with open(os.path.join(published, "expected.json"), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=1)
        handle.write("\n")
    for folder, _, files in os.walk(published):
        for name in files:
            if name.endswith(".lock"):
                os.remove(os.path.join(folder, name))
    print(f"published/: TD {len(td_train)}+{len(td_test)} rows ({len(UNPARSEABLE)} unparseable), CG {len(CG_ROWS)} rows")


if __name__ == "__main__":
    main()
