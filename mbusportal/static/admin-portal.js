// The portal's admin behaviour: copy buttons, the language switch, closing a popup after a token.
"use strict";
(function () {
  function copy(button) {
    var target = document.getElementById(button.dataset.copyTarget);
    if (!target) return;
    var text = target.textContent.trim();
    var done = function () {
      var label = button.textContent;
      button.textContent = button.dataset.copiedLabel || "Copied";
      setTimeout(function () { button.textContent = label; }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { selectText(target); });
    } else {
      selectText(target);
      try { if (document.execCommand("copy")) done(); } catch (e) { /* the text stays selected */ }
    }
  }

  function selectText(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (button) { event.preventDefault(); copy(button); return; }
    var done = event.target.closest("[data-popup-done]");
    if (done && window.opener && window.opener.dismissAddRelatedObjectPopup) {
      event.preventDefault();
      window.opener.dismissAddRelatedObjectPopup(window, done.dataset.value, done.dataset.label);
    }
  });

  document.addEventListener("change", function (event) {
    if (event.target.matches("[data-submit-on-change]")) event.target.form.submit();
  });
})();
