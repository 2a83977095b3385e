// The public surface as the TypeScript checker sees it from src/index.ts:
// every exported name with its kind, and the public members of each, static
// and instance. Machinery a user must never reach shows up here as soon as
// it leaks, because a class's public methods and an interface's members are
// all listed.

import ts from 'typescript';
import { fileURLToPath } from 'node:url';

const INDEX = fileURLToPath(new URL('../../src/index.ts', import.meta.url));

// A name may be a value and a type at once (`Config` is both).
const KINDS: [ts.SymbolFlags, string][] = [
  [ts.SymbolFlags.Class, 'class'],
  [ts.SymbolFlags.Function, 'function'],
  [ts.SymbolFlags.Variable, 'const'],
  [ts.SymbolFlags.Interface, 'interface'],
  [ts.SymbolFlags.TypeAlias, 'type'],
  [ts.SymbolFlags.Enum, 'enum'],
];

function kindOf(symbol: ts.Symbol): string {
  return KINDS.filter(([flag]) => symbol.flags & flag).map(([, name]) => name).join('+') || 'other';
}

// What every class extending Error inherits on its static side.
const ERROR_STATICS = new Set(['captureStackTrace', 'prepareStackTrace', 'stackTraceLimit', 'prototype']);

function isHidden(declaration: ts.Declaration): boolean {
  const modifiers = ts.canHaveModifiers(declaration) ? ts.getModifiers(declaration) : undefined;
  return modifiers?.some((m) => m.kind === ts.SyntaxKind.PrivateKeyword || m.kind === ts.SyntaxKind.ProtectedKeyword) ?? false;
}

function isPublic(member: ts.Symbol): boolean {
  if (member.name.startsWith('#') || member.name.startsWith('__')) return false;
  return !(member.declarations ?? []).some(isHidden);
}

function members(checker: ts.TypeChecker, type: ts.Type): string[] {
  return checker
    .getPropertiesOfType(type)
    .filter(isPublic)
    .map((p) => p.name)
    .sort();
}

/** One line per export: `kind Name: members; static: members`. */
export function publicSurface(): string[] {
  const program = ts.createProgram([INDEX], {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    allowImportingTsExtensions: true,
    noEmit: true,
    strict: true,
    skipLibCheck: true,
    types: ['node'],
  });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(INDEX);
  if (source === undefined) throw new Error(`cannot read ${INDEX}`);
  const module = checker.getSymbolAtLocation(source);
  if (module === undefined) throw new Error(`${INDEX} is not a module`);
  const lines: string[] = [];
  for (const exported of checker.getExportsOfModule(module)) {
    const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
    const kind = kindOf(symbol);
    const declaration = symbol.declarations?.[0];
    let line = `${kind} ${exported.name}`;
    if (kind.startsWith('class') && declaration !== undefined) {
      const instance = checker.getDeclaredTypeOfSymbol(symbol);
      const statics = checker.getTypeOfSymbolAtLocation(symbol, declaration);
      const constructible = statics.getConstructSignatures().some((s) => s.declaration === undefined || !isHidden(s.declaration as ts.Declaration));
      line += `: ${members(checker, instance).join(', ')}; static: ${members(checker, statics).filter((m) => !ERROR_STATICS.has(m)).join(', ')}${constructible ? '; new' : ''}`;
    } else if (kind.includes('interface')) {
      line += `: ${members(checker, checker.getDeclaredTypeOfSymbol(symbol)).join(', ')}`;
    } else if (kind.startsWith('const') && declaration !== undefined) {
      line += `: ${members(checker, checker.getTypeOfSymbolAtLocation(symbol, declaration)).join(', ')}`;
    }
    lines.push(line);
  }
  return lines.sort();
}
