// The public surface as the TypeScript checker sees it from src/index.ts:
// every exported name with its kind (and whether only its type is
// exported), and the public members of each, static and instance, with
// their full types. Machinery a user must never reach shows up here as soon
// as it leaks, because a class's public methods and an interface's members
// are all listed, and so does a signature changed by accident.

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

const FORMAT = ts.TypeFormatFlags.NoTruncation | ts.TypeFormatFlags.WriteArrowStyleSignature;

/** `readonly name?: type`, as the checker writes the member's type. */
function memberLine(checker: ts.TypeChecker, member: ts.Symbol, prefix = ''): string {
  const declaration = member.valueDeclaration ?? member.declarations?.[0];
  const modifiers = declaration !== undefined && ts.canHaveModifiers(declaration) ? ts.getModifiers(declaration) : undefined;
  const readonly = modifiers?.some((m) => m.kind === ts.SyntaxKind.ReadonlyKeyword) || (declaration !== undefined && ts.isGetAccessor(declaration) && member.getDeclarations()?.every((d) => !ts.isSetAccessor(d)));
  const optional = member.flags & ts.SymbolFlags.Optional ? '?' : '';
  const type = declaration === undefined ? 'unknown' : checker.typeToString(checker.getTypeOfSymbolAtLocation(member, declaration), undefined, FORMAT);
  return `  ${prefix}${readonly ? 'readonly ' : ''}${member.name}${optional}: ${type}`;
}

function members(checker: ts.TypeChecker, type: ts.Type, prefix = '', skip: Set<string> = new Set()): string[] {
  return checker
    .getPropertiesOfType(type)
    .filter((p) => isPublic(p) && !skip.has(p.name))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((p) => memberLine(checker, p, prefix));
}

const signatures = (checker: ts.TypeChecker, list: readonly ts.Signature[], prefix: string): string[] =>
  list.filter((s) => s.declaration === undefined || !isHidden(s.declaration as ts.Declaration)).map((s) => `  ${prefix}${checker.signatureToString(s, undefined, FORMAT)}`);

/**
 * Exported with `export type` (or `export { type X }`) somewhere along its
 * re-exports: a user gets its type, never its value, so a class's statics
 * and constructor are not part of what it offers.
 */
function typeOnly(checker: ts.TypeChecker, exported: ts.Symbol): boolean {
  for (let symbol = exported; symbol.flags & ts.SymbolFlags.Alias; symbol = checker.getImmediateAliasedSymbol(symbol) ?? symbol) {
    for (const d of symbol.declarations ?? []) {
      if (ts.isExportSpecifier(d) && (d.isTypeOnly || d.parent.parent.isTypeOnly)) return true;
      if (ts.isImportSpecifier(d) && (d.isTypeOnly || d.parent.parent.isTypeOnly === true)) return true;
    }
    if (checker.getImmediateAliasedSymbol(symbol) === undefined) break;
  }
  return false;
}

/**
 * Per export, sorted by name: a heading (`class Runtime`, `type-only class
 * AmqpWorker`, `const PROMETHEUS_CONTENT_TYPE: "..."`, `type Source<T> =
 * ...`), then its public members, one per line with the type the checker
 * gives it, statics and constructors marked: the full signatures, so a
 * changed parameter or return type shows as plainly as a new name.
 */
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
  const blocks: [name: string, heading: string, lines: string[]][] = [];
  for (const exported of checker.getExportsOfModule(module)) {
    const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
    const kind = kindOf(symbol);
    const declaration = symbol.declarations?.[0];
    const valueless = typeOnly(checker, exported);
    const generic = declaration !== undefined && (ts.isClassDeclaration(declaration) || ts.isInterfaceDeclaration(declaration) || ts.isTypeAliasDeclaration(declaration)) ? declaration.typeParameters : undefined;
    const parameters = generic === undefined ? '' : `<${generic.map((p) => p.getText()).join(', ')}>`;
    const heading = `${valueless && /class|function|const/.test(kind) ? 'type-only ' : ''}${kind} ${exported.name}${parameters}`;
    const lines: string[] = [];
    if (declaration === undefined) {
      blocks.push([exported.name, heading, lines]);
      continue;
    }
    if (kind.startsWith('class')) {
      lines.push(...members(checker, checker.getDeclaredTypeOfSymbol(symbol)));
      if (!valueless) {
        const statics = checker.getTypeOfSymbolAtLocation(symbol, declaration);
        lines.push(...members(checker, statics, 'static ', ERROR_STATICS), ...signatures(checker, statics.getConstructSignatures(), 'new '));
      }
    } else if (kind.includes('interface')) {
      const type = checker.getDeclaredTypeOfSymbol(symbol);
      lines.push(...members(checker, type), ...signatures(checker, type.getCallSignatures(), ''));
    } else if (kind.startsWith('function')) {
      lines.push(...signatures(checker, checker.getTypeOfSymbolAtLocation(symbol, declaration).getCallSignatures(), ''));
    } else if (kind.startsWith('const')) {
      const type = checker.getTypeOfSymbolAtLocation(symbol, declaration);
      if (type.flags & ts.TypeFlags.Object) lines.push(...members(checker, type), ...signatures(checker, type.getCallSignatures(), ''));
      else {
        blocks.push([exported.name, `${heading}: ${checker.typeToString(type, undefined, FORMAT)}`, lines]);
        continue;
      }
    } else if (kind === 'type' && ts.isTypeAliasDeclaration(declaration)) {
      blocks.push([exported.name, `${heading} = ${declaration.type.getText().replace(/\s+/g, ' ')}`, lines]);
      continue;
    }
    blocks.push([exported.name, heading, lines]);
  }
  return blocks.sort(([a], [b]) => (a < b ? -1 : 1)).flatMap(([, heading, lines]) => [heading, ...lines]);
}
