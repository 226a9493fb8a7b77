// RFC 4515 filter-value and RFC 4514 DN-value escaping, and filter templates with %s/%u/%d.
// Every byte from the network that reaches a filter or DN string passes through here; never
// escape a template, only the values put into it.

/**
 * RFC 4515 §3: `*` `(` `)` `\` NUL must be escaped as \XX; we also escape every control octet,
 * DEL and every octet >= 0x80 (each UTF-8 byte on its own, which is always valid).
 */
export function escapeFilterValue(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    if (byte < 0x20 || byte >= 0x7f || byte === 0x2a || byte === 0x28 || byte === 0x29 || byte === 0x5c) {
      out += '\\' + byte.toString(16).padStart(2, '0');
    } else {
      out += String.fromCharCode(byte);
    }
  }
  return out;
}

/**
 * RFC 4514 §2.4: `"` `+` `,` `;` `<` `>` `\` get a backslash anywhere, `#` or space at the start,
 * space at the end; NUL and other control characters, and `=`, become \XX.
 */
export function escapeDnValue(value: string): string {
  let out = '';
  const chars = [...value];
  chars.forEach((ch, i) => {
    const code = ch.codePointAt(0)!;
    if (code < 0x20 || code === 0x7f || ch === '=') {
      out += '\\' + code.toString(16).padStart(2, '0');
    } else if ('"+,;<>\\'.includes(ch) || (i === 0 && (ch === '#' || ch === ' ')) || (i === chars.length - 1 && ch === ' ')) {
      out += '\\' + ch;
    } else {
      out += ch;
    }
  });
  return out;
}

/**
 * Expand a Postfix-style filter template: %s the whole key, %u its local part, %d its domain,
 * %% a literal %. Each value is filter-escaped. Returns null when the template needs a part the
 * key does not have ("no query" means not found, as in Postfix ldap_table).
 */
export function expandFilterTemplate(template: string, key: string): string | null {
  const at = key.lastIndexOf('@');
  const local = at >= 0 ? key.slice(0, at) : key;
  const domain = at >= 0 ? key.slice(at + 1) : null;
  let missing = false;
  const out = template.replace(/%([%sudSUD])/g, (_, c: string) => {
    switch (c.toLowerCase()) {
      case '%': return '%';
      case 's': return escapeFilterValue(key);
      case 'u':
        if (local === '') missing = true;
        return escapeFilterValue(local);
      default:
        if (domain === null || domain === '') missing = true;
        return escapeFilterValue(domain ?? '');
    }
  });
  return missing ? null : out;
}
