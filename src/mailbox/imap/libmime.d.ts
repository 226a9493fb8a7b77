// The one function of libmime (installed with mailauth, no types of its own) the IMAP parts use.
declare module 'libmime' {
  interface Libmime {
    /** Decodes RFC 2047 encoded-words in a header value to a JS string; other text is kept. */
    decodeWords(value: string): string;
  }
  const libmime: Libmime;
  export default libmime;
}
