// Follow a publish or rollback under way: the bar and the message from the job's API,
// and the page again once the job is over (what is live has changed).
(function () {
  "use strict";
  var box = document.getElementById("job");
  if (!box || box.dataset.finished === "true") { return; }
  var bar = box.querySelector("progress");
  var stage = box.querySelector("[data-stage]");
  var message = box.querySelector("[data-message]");
  var poll = function () {
    fetch("/api/publish/jobs/" + encodeURIComponent(box.dataset.job), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (job) {
        if (!job) { setTimeout(poll, 3000); return; }
        bar.value = job.percent;
        stage.textContent = job.stage_label + " · " + job.percent + "%";
        message.textContent = job.message;
        if (job.finished_yet) { window.location.reload(); } else { setTimeout(poll, 1500); }
      })
      .catch(function () { setTimeout(poll, 3000); });
  };
  setTimeout(poll, 1000);
})();
