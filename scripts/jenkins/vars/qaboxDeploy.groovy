// qaboxDeploy: deploys a pull request's merge result into its ticket's QA
// environment with the qabox CLI, and returns what happened as a Map.
//
// A step of a Jenkins shared library: put this repository's scripts/jenkins/
// directory (or a copy of vars/) in a library configured under "Global Pipeline
// Libraries", then `@Library('qabox') _` in a Jenkinsfile.
//
//   def r = qaboxDeploy(ticket: 'EXMP-113', repo: 'shop',
//                       source: env.CHANGE_BRANCH, target: env.CHANGE_TARGET,
//                       env: [FEATURE_X: 'on'],                  // plain variables for the app
//                       secrets: [API_KEY: 'shop-qa-api-key'],   // variable: Secret text id
//                       ttl: '72h')
//   if (r.ok) { echo "ready at ${r.url}" }
//
// Options: ticket (required), repo, source, target, image, env, secrets, ttl,
// force, timeout (how long to wait, default '15m'), endpoint (default
// $QABOX_ENDPOINT on the agent, then the CLI's default local socket),
// credentialsId (a Secret text credential holding the API token; it reaches
// the CLI as QABOX_TOKEN, never on the command line), qabox (the CLI's path,
// default 'qabox'), failOnError (default true).
//
// Returns [ok, exitCode, outcome, message, url, state, commit, environment]:
// `environment` is the parsed protobuf JSON of qabox.v1.Environment (proto
// field names: url, state, commit, message, ...), or null when the agent never
// reported one (a refused request). `outcome` names the CLI's exit code.
//
// With failOnError the build fails unless the deploy succeeded, after the
// result has been logged; a PR job that wants to comment on the failure first
// passes failOnError: false and reads `outcome` and `message`.
//
// Needs the Pipeline Utility Steps plugin for readJSON, and bash on the agent.

def call(Map args = [:]) {
  if (!args.ticket) {
    error('qaboxDeploy: ticket is required, as ticket: \'EXMP-113\'')
  }
  String qabox = args.qabox ?: 'qabox'
  List<String> cmd = [qabox, 'deploy', args.ticket as String, '-o', 'json']
  if (args.endpoint) { cmd += ['--endpoint', args.endpoint as String] }
  if (args.image) { cmd += ['--image', args.image as String] }
  if (args.repo) {
    cmd += ['--repo', args.repo as String,
            '--source', args.source as String,
            '--target', args.target as String]
  }
  (args.env ?: [:]).each { k, v -> cmd += ['--env', "${k}=${v}" as String] }
  // `--secret KEY` alone makes the CLI read KEY from its own environment, so
  // secret values never appear in the command line or the build log.
  (args.secrets ?: [:]).keySet().each { k -> cmd += ['--secret', k as String] }
  if (args.ttl) { cmd += ['--ttl', args.ttl as String] }
  if (args.force) { cmd += ['--force'] }
  cmd += ['--timeout', (args.timeout ?: '15m') as String]

  String out = ".qabox/deploy-${args.ticket}.json"
  String err = ".qabox/deploy-${args.ticket}.err"
  List bindings = (args.secrets ?: [:]).collect { k, id ->
    string(credentialsId: id as String, variable: k as String)
  }
  if (args.credentialsId) {
    bindings << string(credentialsId: args.credentialsId as String, variable: 'QABOX_TOKEN')
  }

  int code = 0
  withCredentials(bindings) {
    // stdout carries only the JSON; stderr (phases as they finish, then any
    // error) is shown live and kept for the message. pipefail keeps the CLI's
    // exit code through tee.
    code = sh(returnStatus: true, label: "qabox deploy ${args.ticket}", script: """#!/bin/bash
set -o pipefail
mkdir -p .qabox
{ ${shellJoin(cmd)} 2>&1 >${shellQuote(out)} | tee ${shellQuote(err)} >&2; }
""")
  }

  Map result = [ok: code == 0, exitCode: code, outcome: outcomeName(code),
                message: '', url: '', state: '', commit: '', environment: null]
  // On 0 and 7 the CLI prints the environment; otherwise stdout is empty.
  if (fileExists(out) && readFile(out).trim()) {
    def env = readJSON(file: out)
    result.environment = env
    result.url = env.url ?: ''
    result.state = env.state ?: ''
    result.commit = env.commit ?: ''
    result.message = env.message ?: ''
  }
  if (code != 0 && fileExists(err)) {
    // The CLI's own lines start with "qabox: "; the first is the agent's message.
    def lines = readFile(err).readLines().findAll { it.startsWith('qabox: ') }
    if (lines) { result.message = lines[0].substring('qabox: '.length()) }
  }
  echo "qaboxDeploy ${args.ticket}: ${result.outcome} (exit ${code})" +
       (result.url ? " ${result.url}" : '') + (result.message ? ": ${result.message}" : '')
  if (code != 0 && args.get('failOnError', true)) {
    error("qaboxDeploy ${args.ticket}: ${result.outcome}: ${result.message}")
  }
  return result
}

// The CLI's exit codes (qabox --help) are stable: scripts branch on them.
static String outcomeName(int code) {
  switch (code) {
    case 0: return 'ok'
    case 2: return 'usage'
    case 3: return 'not-found'
    case 4: return 'conflict'       // merge conflict, or the ticket exists with another spec
    case 5: return 'denied'         // no or bad token, or a role that may not deploy
    case 6: return 'unavailable'    // the agent was not reached, or the wait timed out
    case 7: return 'deploy-failed'  // a hook or the health check failed; the environment is FAILED
    default: return 'error'
  }
}

// Single quotes survive every character but the single quote itself.
static String shellQuote(String s) {
  return "'" + s.replace("'", "'\\''") + "'"
}

static String shellJoin(List<String> words) {
  return words.collect { shellQuote(it) }.join(' ')
}
