// Try the line: after each step of a trial, move focus to what the line said, so keyboard and screen
// reader users hear the answer first and carry on from there. The page works the same without it.
const said = document.getElementById("line-says");
if (said && !document.querySelector(".nhsuk-error-summary")) {
  said.focus();
}
