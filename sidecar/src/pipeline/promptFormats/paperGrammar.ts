/**
 * GBNF grammars (llama.cpp syntax) of the "paper" answers, so that a model prompted in the authors'
 * format can only write text that parsePaperDecomposition / parsePaperCode read into the schemas.
 *
 * Line lengths are capped below the schemas' limits (a TD title becomes the problem statement,
 * at most 600 characters; a detail becomes a step, at most 300), which also bounds how long a
 * confused model can run before the grammar forces the next line. llama.cpp refuses grammars whose
 * repetition counts add up past about 2000, which these stay under.
 */

const TD_MAX_SUBTASKS = 8;
const TD_TITLE_CHARS = 400;
const TD_DETAIL_CHARS = 280;
const TD_MAX_DETAILS = 6;

function nestedBlocks(from: number, to: number): string {
  if (from > to) return "";
  return `("\\n\\n${from}. " body ${nestedBlocks(from + 1, to)})?`;
}

/** "1. title\n- detail\n...\n\n2. title ..." with 2 to 8 numbered blocks, numbered in order. */
export const PAPER_TD_GRAMMAR = [
  `root ::= " "? "1. " body "\\n\\n2. " body ${nestedBlocks(3, TD_MAX_SUBTASKS)}`,
  `body ::= title ("\\n- " detail){0,${TD_MAX_DETAILS}}`,
  `title ::= [^\\n ] [^\\n]{0,${TD_TITLE_CHARS - 1}}`,
  `detail ::= [^\\n ] [^\\n]{0,${TD_DETAIL_CHARS - 1}}`,
].join("\n");

const CG_LINE_CHARS = 240;
const CG_MAX_LINES = 400;
const DOC_LINE_CHARS = 240;
const DOC_MAX_LINES = 60;

/** "```python\n<code lines>```" then, optionally, "\n\n<Markdown documentation>". */
export const PAPER_CG_GRAMMAR = [
  `root ::= " "? "\`\`\`python\\n" first line{0,${CG_MAX_LINES - 1}} "\`\`\`" ("\\n\\n" doc)?`,
  `first ::= [^\`\\n] [^\\n]{0,${CG_LINE_CHARS - 1}} "\\n"`,
  `line ::= ([^\`\\n] [^\\n]{0,${CG_LINE_CHARS - 1}} | "\`" ([^\`\\n] [^\\n]{0,${CG_LINE_CHARS - 2}})? | "\`\`" ([^\`\\n] [^\\n]{0,${CG_LINE_CHARS - 3}})?)? "\\n"`,
  `doc ::= docline ("\\n" docline){0,${DOC_MAX_LINES - 1}}`,
  `docline ::= [^\\n]{0,${DOC_LINE_CHARS}}`,
].join("\n");
