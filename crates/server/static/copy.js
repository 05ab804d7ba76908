// Copy buttons: <button type="button" data-copy="ELEMENT-ID">Copy</button> copies the text of
// that element. Served as a file by the binary (the CSP forbids inline script); pages work
// without it, the button only saves selecting the text by hand.
"use strict";
document.addEventListener("click", function (event) {
  var button = event.target.closest("button[data-copy]");
  if (!button) return;
  var source = document.getElementById(button.getAttribute("data-copy"));
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.textContent.trim()).then(function () {
    var label = button.textContent;
    button.textContent = "Copied";
    setTimeout(function () { button.textContent = label; }, 1500);
  });
});
// Copy buttons are hidden until this script runs, so a page without JavaScript shows none.
document.querySelectorAll("button[data-copy]").forEach(function (b) { b.hidden = false; });
