// The shapes the IMAP parts share: what the reader makes of a client's bytes (tokens and commands)
// and what a command handler sees of a message. No behaviour here.

/** One argument of a command, as RFC 3501 §9 writes it. */
export type Token =
  /** An atom, a number, NIL, a flag (`\Seen`), a sequence set (`1:*`) or a list pattern (`INBOX.%`). The text as sent (case kept).
   *  `BODY[HEADER.FIELDS (A B)]<0.100>` is one atom `BODY` (or `BODY.PEEK`, `BINARY` …) with `section` and `partial`. */
  | { readonly type: 'atom'; readonly value: string; readonly section?: readonly Token[]; readonly partial?: { readonly start: number; readonly length: number } }
  /** A quoted string or a literal (synchronising or not), as bytes. */
  | { readonly type: 'string'; readonly value: Buffer; readonly literal: boolean }
  /** A parenthesised list. */
  | { readonly type: 'list'; readonly items: readonly Token[] };

/** A whole command: the tag, the command name in upper case, its arguments (for `UID FETCH …` the name is `UID`). */
export interface Command {
  readonly tag: string;
  readonly name: string;
  readonly args: readonly Token[];
}

/** System flags IMAP knows and Maildir stores in its info letters (D F R S T). */
export const SYSTEM_FLAGS = ['\\Seen', '\\Answered', '\\Flagged', '\\Deleted', '\\Draft'] as const;
