// qaboxDelete: deletes a ticket's QA environment (container, address, route)
// with the qabox CLI. Deleting one that is already gone is not an error, so
// clean-up jobs can run more than once.
//
//   qaboxDelete(ticket: 'EXMP-113')               // true: deleted, false: there was none
//
// Options: ticket (required), endpoint, credentialsId, qabox: as for
// qaboxDeploy. Fails the build on any other error (agent unreachable, denied).
// Needs the Pipeline Utility Steps plugin for readJSON.
def call(Map args = [:]) {
  if (!args.ticket) {
    error('qaboxDelete: ticket is required, as ticket: \'EXMP-113\'')
  }
  List<String> cmd = [(args.qabox ?: 'qabox') as String, 'delete', args.ticket as String,
                      '-o', 'json']
  if (args.endpoint) { cmd += ['--endpoint', args.endpoint as String] }
  String out = ".qabox/delete-${args.ticket}.json"
  List bindings = []
  if (args.credentialsId) {
    bindings << string(credentialsId: args.credentialsId as String, variable: 'QABOX_TOKEN')
  }
  int code = 0
  withCredentials(bindings) {
    code = sh(returnStatus: true, label: "qabox delete ${args.ticket}",
              script: "mkdir -p .qabox && ${cmd.collect { shellQuote(it) }.join(' ')} >'${out}'")
  }
  switch (code) {
    case 0:
      // qabox.v1.DeleteEnvironmentResponse: {"ticket": "..."}
      echo "qaboxDelete: ${readJSON(file: out).ticket} deleted"
      return true
    case 3:
      echo "qaboxDelete: ${args.ticket} has no environment; nothing to delete"
      return false
    default:
      error("qaboxDelete ${args.ticket}: qabox exited ${code} (6: agent unreachable, " +
            "5: denied, 4: busy with another operation); see the message above")
  }
}

static String shellQuote(String s) {
  return "'" + s.replace("'", "'\\''") + "'"
}
