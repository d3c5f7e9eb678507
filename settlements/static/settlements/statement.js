// The statement's print button (a script file, not an onclick attribute: the site's
// Content-Security-Policy runs no inline script).
"use strict";
document.addEventListener("click", function (event) {
  if (event.target.closest("[data-print]")) window.print();
});
