#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Holds lib/man to the library's real interface, in both directions.

The interface is what libpolar-accel.so exports (the version script
applied by the linker, wildcards and all) and what the public headers
declare. The check fails when:
  - a name in the version script is not exported (a typo or a stale name);
  - a header declares a polar_* function or object the library does not
    export (an application would compile and then fail to link);
  - an export has no header declaration or no page lib/man/<name>.3;
  - a page is a link (.so man3/x.3) to a page whose NAME does not list it;
  - a page's NAME lists a name that is not exported, or that has no page
    of its own; a page not named after an export is a group page (such as
    polar_calib.3) and must list exports only;
  - a name in a NAME section has no prototype in that page's SYNOPSIS, or
    the prototype differs from the header's (types, names, array sizes:
    compared token by token, so layout and line breaks do not matter);
  - groff warns about a page (groff -man -ww -z);
  - with ARGTEST (tests/unit/test_args.c), an exported function has no
    bad-argument case X(function, ...) there.
It prints one "ok"/"not ok" line per export and per page, then a
"N passed, N failed" line.

usage: check-man.py LIBSO MAPFILE INCLUDEDIR MANDIR [ARGTEST]
"""
import os
import re
import subprocess
import sys


def exports(libso, kinds='TDRB'):
    out = subprocess.run(['nm', '-D', '--defined-only', libso], check=True,
                         capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        f = line.split()
        if len(f) == 3 and f[1] in kinds and '@' in f[2]:
            names.add(f[2].split('@')[0])
    return names


def map_names(mapfile):
    text = re.sub(r'#.*', '', open(mapfile).read())
    m = re.search(r'global:(.*?)local:', text, re.S)
    return [n.strip() for n in m.group(1).split(';') if n.strip()]


def tokens(decl):
    """A declaration as a list of C tokens, without storage class."""
    toks = re.findall(r'[A-Za-z_]\w*|\d+|\S', decl)
    return [t for t in toks if t != 'extern']


def header_decls(incdir):
    """name -> token list of every polar_* function or object declared."""
    decls = {}
    for fn in sorted(os.listdir(incdir)):
        if not fn.endswith('.h'):
            continue
        text = open(os.path.join(incdir, fn)).read()
        text = re.sub(r'/\*.*?\*/', ' ', text, flags=re.S)
        text = re.sub(r'//[^\n]*', ' ', text)
        text = re.sub(r'^\s*#[^\n]*', ' ', text, flags=re.M)
        text = text.replace('extern "C" {', ' ')
        # Drop struct, union and enum bodies: their members are no
        # declarations of the library's.
        while True:
            new = re.sub(r'\{[^{}]*\}', ' ', text)
            if new == text:
                break
            text = new
        for stmt in text.split(';'):
            m = re.search(r'\b(polar_\w+)\s*[(\[]', stmt)
            if not m or re.match(r'\s*(typedef|struct|enum|union)\b.*\b'
                                 + m.group(1) + r'\s*\(\s*\*', stmt):
                continue
            if re.search(r'\(\s*\*\s*' + m.group(1), stmt):
                continue  # a function pointer, not a declaration
            decls[m.group(1)] = tokens(stmt.strip())
    return decls


def groff_args(rest):
    """The arguments of a font macro line (.B, .BI, ...), quotes honoured."""
    return [a[1:-1] if a.startswith('"') else a
            for a in re.findall(r'"[^"]*"|\S+', rest)]


def unescape(s):
    s = s.replace(r'\-', '-').replace(r'\e', '\\').replace(r'\(dq', '"')
    s = re.sub(r'\\f[BIRP]', '', s)
    return s.replace(r'\&', '')


def parse_page(path):
    """(link target or None, NAME names, SYNOPSIS text)"""
    lines = open(path).read().splitlines()
    body = [l for l in lines if not l.startswith('.\\"')]
    if body and body[0].startswith('.so '):
        return body[0].split()[1], [], ''
    section, name_text, syn, in_nf = None, [], [], False
    for line in body:
        if line.startswith('.SH'):
            section = line[3:].strip().strip('"')
            continue
        if section == 'NAME':
            name_text.append(line)
        elif section == 'SYNOPSIS':
            if line.startswith('.nf'):
                in_nf = True
            elif line.startswith('.fi'):
                in_nf = False
            elif not in_nf:
                continue
            elif line.startswith('.'):
                m = re.match(r'\.(B|I|R|BI|IB|BR|RB|IR|RI)\s+(.*)', line)
                if not m:
                    continue
                args = groff_args(m.group(2))
                sep = ' ' if m.group(1) in ('B', 'I', 'R') else ''
                syn.append(unescape(sep.join(args)))
            else:
                syn.append(unescape(line))
    names = unescape(' '.join(name_text)).split(' - ')[0]
    return None, [n.strip() for n in names.split(',') if n.strip()], \
        '\n'.join(l for l in syn if not l.lstrip().startswith('#'))


def synopsis_decls(syn):
    decls = {}
    for stmt in syn.split(';'):
        m = re.search(r'\b(polar_\w+)\s*[(\[]', stmt)
        if m:
            decls[m.group(1)] = tokens(stmt.strip())
    return decls


def main():
    libso, mapfile, incdir, mandir = sys.argv[1:5]
    exp = exports(libso)
    hdr = header_decls(incdir)
    results = []

    def check(ok, what, why=''):
        results.append(ok)
        print(('ok - ' if ok else 'not ok - ') + what +
              ('' if ok else ': ' + why))

    for n in map_names(mapfile):
        if '*' not in n and n not in exp:
            check(False, 'version script: ' + n, 'not exported by ' + libso)
    for n in sorted(set(hdr) - exp):
        check(False, 'header: ' + n,
              'declared in a public header but not exported')

    pages = {}
    for fn in sorted(os.listdir(mandir)):
        if fn.endswith('.3'):
            pages[fn[:-2]] = parse_page(os.path.join(mandir, fn))

    def main_page(n):
        link, _, _ = pages[n]
        if link is None:
            return n
        target = os.path.basename(link)[:-2]
        return target if target in pages and pages[target][0] is None \
            else None

    for n in sorted(exp):
        if n not in hdr:
            check(False, 'man: ' + n, 'no declaration in ' + incdir)
            continue
        if n not in pages:
            check(False, 'man: ' + n, 'no page %s/%s.3' % (mandir, n))
            continue
        mp = main_page(n)
        if mp is None:
            check(False, 'man: ' + n, 'link page %s.3 points to no page'
                  % n)
            continue
        _, names, syn = pages[mp]
        if n not in names:
            check(False, 'man: ' + n, '%s.3 does not list it in NAME' % mp)
            continue
        proto = synopsis_decls(syn).get(n)
        if proto is None:
            check(False, 'man: ' + n, 'no prototype in the SYNOPSIS of %s.3'
                  % mp)
        elif proto != hdr[n]:
            check(False, 'man: ' + n, 'SYNOPSIS of %s.3 says "%s", the '
                  'header "%s"' % (mp, ' '.join(proto), ' '.join(hdr[n])))
        else:
            check(True, 'man: ' + n)

    for p in sorted(pages):
        link, names, _ = pages[p]
        if link is not None:
            if p in exp and main_page(p) is not None:
                check(True, 'page %s.3 (link)' % p)
            elif p not in exp:
                check(False, 'page %s.3' % p, 'a link page for %s, which '
                      'is not exported' % p)
            else:
                check(False, 'page %s.3' % p, 'links to no page')
            continue
        bad = [n for n in names if n not in exp]
        nopage = [n for n in names if n in exp and n not in pages]
        warn = subprocess.run(['groff', '-man', '-ww', '-z',
                               os.path.join(mandir, p + '.3')],
                              capture_output=True, text=True).stderr.strip()
        if not names:
            check(False, 'page %s.3' % p, 'no NAME section')
        elif bad:
            check(False, 'page %s.3' % p, 'NAME lists %s, not exported'
                  % ', '.join(bad))
        elif nopage:
            check(False, 'page %s.3' % p, 'no link page for %s'
                  % ', '.join(nopage))
        elif warn:
            check(False, 'page %s.3' % p, 'groff: ' + warn)
        else:
            check(True, 'page %s.3' % p)

    if len(sys.argv) > 5:
        cases = set(re.findall(r'\bX\((polar_\w+),', open(sys.argv[5]).read()))
        for n in sorted(exports(libso, 'T')):
            if n not in cases:
                check(False, 'bad-argument case: ' + n,
                      'no X(%s, ...) in %s' % (n, sys.argv[5]))
        for n in sorted(cases - exp):
            check(False, 'bad-argument case: ' + n, 'not exported')

    print('%d passed, %d failed' % (results.count(True),
                                    results.count(False)))
    return 0 if all(results) else 1


if __name__ == '__main__':
    sys.exit(main())
