// qaboxTicket: the ticket a pull request's environment is named after, the
// same for the PR job and the clean-up job so both find the same environment.
// The ticket also makes the URL: EXMP-113 -> http://exmp-113.qa.company.int.
//
//   qaboxTicket(branch: 'feature/EXMP-113-cart', title: 'Cart badge', pr: '42')  // EXMP-113
//   qaboxTicket(branch: 'fix-typo', title: 'Fix a typo', pr: '42')               // PR-42
//
// The first Jira-style key in the branch, then in the title, else PR-<number>.
@NonCPS
String call(Map args = [:]) {
  for (String text : [args.branch, args.title]) {
    def m = ((text ?: '') as String) =~ /[A-Z][A-Z0-9]+-\d+/
    if (m.find()) {
      return m.group()
    }
  }
  return "PR-${args.pr}" as String
}
