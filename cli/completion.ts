import type { Command, Option } from 'commander';

// Shell completion scripts generated from the commander program itself: a command or option added
// anywhere completes without touching this file. The scripts hold the command tree as a table
// (`_remotegpu_words PATH KIND`) and one walker written in the shell language bash and zsh share,
// so both complete the same words; only the last step (COMPREPLY or compadd) differs.

/** One command of the tree, by the words that lead to it (`''` for the program, `admin host`). */
export interface CompletionNode {
  readonly path: string;
  readonly subcommands: readonly string[];
  /** Its options and those of the commands above it (commander accepts them after a subcommand). */
  readonly options: readonly string[];
  /** The options that take a value: the next word is that value, not a command or argument. */
  readonly valueOptions: readonly string[];
  /** For each positional argument, what may complete it by asking the controller ('' for nothing). */
  readonly argKinds: readonly string[];
}

/** Argument names whose values the hidden `__complete KIND` command lists (environment names, …). */
const ARG_KINDS: Record<string, string> = { env: 'env', environment: 'env', host: 'host', user: 'user' };
/** Options whose values `__complete` lists. */
const OPTION_KINDS: Record<string, string> = { '--context': 'context' };

/** A word safe to put between single quotes in either shell and to split on spaces. */
const SAFE = /^[A-Za-z0-9_.:@+=-]+$/;

/** Every visible command of the program, with its subcommands, options and argument kinds. */
export function completionTree(program: Command): CompletionNode[] {
  const nodes: CompletionNode[] = [];
  const visit = (cmd: Command, path: string, inherited: readonly Option[]) => {
    const help = cmd.createHelp();
    const options = [...inherited, ...help.visibleOptions(cmd)];
    const commands = help.visibleCommands(cmd);
    const flags = (opts: readonly Option[]) => unique(opts.flatMap((o) => [o.long, o.short]).filter((f): f is string => !!f && SAFE.test(f)));
    nodes.push({
      path,
      subcommands: unique(commands.flatMap((c) => [c.name(), ...c.aliases()]).filter((n) => SAFE.test(n))),
      options: flags(options),
      valueOptions: flags(options.filter((o) => o.required)),
      argKinds: cmd.registeredArguments.map((a) => ARG_KINDS[a.name().toLowerCase()] ?? ''),
    });
    // Options of this command stay valid below it, except --help/--version which each has its own.
    const passed = [...inherited, ...cmd.options.filter((o) => o.long !== '--version')];
    for (const sub of commands) {
      for (const name of [sub.name(), ...sub.aliases()]) {
        if (SAFE.test(name) && name !== 'help') visit(sub, path ? `${path} ${name}` : name, passed);
      }
    }
  };
  visit(program, '', []);
  return nodes;
}

function unique(words: readonly string[]): string[] {
  return [...new Set(words)];
}

/** The table as one `case` on "PATH|KIND": subs, opts, vals, arg0, arg1, … and val:OPTION. */
function wordsFunction(nodes: readonly CompletionNode[]): string {
  const lines: string[] = [];
  const add = (path: string, kind: string, words: readonly string[]) => {
    if (words.length > 0) lines.push(`    '${path}|${kind}') printf '%s\\n' '${words.join(' ')}' ;;`);
  };
  for (const n of nodes) {
    add(n.path, 'subs', n.subcommands);
    add(n.path, 'opts', n.options);
    add(n.path, 'vals', n.valueOptions);
    n.argKinds.forEach((kind, i) => add(n.path, `arg${i}`, kind ? [kind] : []));
  }
  for (const [option, kind] of Object.entries(OPTION_KINDS)) lines.push(`    *'|val:${option}') printf '%s\\n' '${kind}' ;;`);
  return `_remotegpu_words() {\n  case "$1|$2" in\n${lines.join('\n')}\n  esac\n}`;
}

/**
 * The walker, valid bash and zsh: `_remotegpu_candidates PROG WORD… CURRENT` prints the words that
 * may come at CURRENT (space or newline separated; the shell filters them by what is typed), or
 * nothing to let the shell complete file names. It follows subcommands, skips option values, and
 * for an argument or option with a kind asks `PROG [--context C] __complete KIND` (names from the
 * controller; silent on any failure).
 */
const CANDIDATES = `_remotegpu_candidates() {
  local prog=$1 cmdpath='' w='' skip='' prevopt='' ctx='' nargs=0 subs='' kind=''
  shift
  while [ $# -gt 1 ]; do
    w=$1
    shift
    # bash splits --memory=16Gi into "--memory" "=" "16Gi": the word after "=" is the value.
    if [ "$w" = '=' ]; then skip=1; continue; fi
    if [ -n "$skip" ]; then
      skip=''
      [ "$prevopt" = --context ] && ctx=$w
      continue
    fi
    case $w in
      --context=*) ctx=\${w#--context=}; continue ;;
      -*=*) continue ;;
      -*)
        case " $(_remotegpu_words "$cmdpath" vals) " in *" $w "*) skip=1; prevopt=$w ;; esac
        continue ;;
    esac
    subs=$(_remotegpu_words "$cmdpath" subs)
    if [ "$nargs" -eq 0 ]; then
      case " $subs " in *" $w "*) cmdpath=\${cmdpath:+$cmdpath }$w; continue ;; esac
    fi
    nargs=$((nargs + 1))
  done
  if [ -n "$skip" ]; then
    kind=$(_remotegpu_words "$cmdpath" "val:$prevopt")
  else
    case $1 in
      -*) _remotegpu_words "$cmdpath" opts; return ;;
    esac
    subs=$(_remotegpu_words "$cmdpath" subs)
    if [ -n "$subs" ] && [ "$nargs" -eq 0 ]; then printf '%s\\n' "$subs"; return; fi
    kind=$(_remotegpu_words "$cmdpath" "arg$nargs")
  fi
  [ -n "$kind" ] || return 0
  if [ -n "$ctx" ]; then "$prog" --context "$ctx" __complete "$kind" 2>/dev/null
  else "$prog" __complete "$kind" 2>/dev/null; fi
}`;

/** The bash script: `source <(remotegpu completion bash)`. */
export function bashScript(program: Command): string {
  return `# bash completion for remotegpu (generated by \`remotegpu completion bash\`).
# Load it in this shell:   source <(remotegpu completion bash)
# or for every new shell:  echo 'source <(remotegpu completion bash)' >> ~/.bashrc
${wordsFunction(completionTree(program))}

${CANDIDATES}

_remotegpu() {
  local cur=\${COMP_WORDS[COMP_CWORD]}
  local IFS=$' \\t\\n'
  COMPREPLY=($(compgen -W "$(_remotegpu_candidates "\${COMP_WORDS[0]}" "\${COMP_WORDS[@]:1:COMP_CWORD}")" -- "$cur"))
}
complete -o default -F _remotegpu remotegpu
`;
}

/** The zsh script: `remotegpu completion zsh > "${fpath[1]}/_remotegpu"` (or sourced after compinit). */
export function zshScript(program: Command): string {
  return `#compdef remotegpu
# zsh completion for remotegpu (generated by \`remotegpu completion zsh\`).
# Install:  remotegpu completion zsh > "\${fpath[1]}/_remotegpu"   (then start a new shell)
# or, after compinit in ~/.zshrc:  source <(remotegpu completion zsh)
${wordsFunction(completionTree(program))}

${CANDIDATES}

_remotegpu() {
  local -a cands
  cands=(\${=$(_remotegpu_candidates "\${words[1]}" "\${(@)words[2,CURRENT]}")})
  if (( \${#cands} )); then compadd -- "\${cands[@]}"; else _default; fi
}

# Autoloaded from $fpath this file is the body of _remotegpu: define, then complete; sourced: register.
if [ "\${funcstack[1]}" = _remotegpu ]; then _remotegpu "$@"; else compdef _remotegpu remotegpu; fi
`;
}
