package controllers

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/contract"
)

// plan is what one reconcile pass decides for a job. It is computed by planJob, a pure function of
// the job, its pods and the time; the reconciler carries it out and writes status once.
type plan struct {
	status kubetrainv1alpha1.TrainingJobStatus
	// createWorkers asks for the current attempt's worker pods to be created.
	createWorkers bool
	// deletePods are active pods to stop.
	deletePods []*corev1.Pod
	// deleteJob asks for the job to be deleted (its TTL after finishing passed).
	deleteJob bool
	// requeueAfter asks for another pass after this long, when nothing else would trigger one
	// (a backoff, a deadline, a TTL). Zero means no timed pass.
	requeueAfter time.Duration
	// events are emitted after the status write succeeds.
	events []event
	// admission is what Kueue adds to the workers of a job in one of its queues, or nil.
	admission *queueAdmission
}

type event struct {
	eventType, reason, action, note string
}

type planner struct {
	tj *kubetrainv1alpha1.TrainingJob
	// queue is what Kueue decided for a job in one of its queues; nil for any other job.
	queue   *queueAdmission
	now     time.Time
	nowMeta metav1.Time
	cfg     Config
	// current holds the pods of the current attempt by rank; activeOld the pods of earlier
	// attempts that still run (or are stopping).
	current   map[int32]*corev1.Pod
	activeOld []*corev1.Pod
	// pods are all the job's pods.
	pods []*corev1.Pod
	// ended says how the attempt that ended in this pass ended ("failed: why"), for the backoff's
	// message.
	ended string
	out   plan
}

// planJob decides what to do with a job, given every pod it owns. It never touches a client.
func planJob(tj *kubetrainv1alpha1.TrainingJob, pods []*corev1.Pod, now time.Time, cfg Config) plan {
	return planQueuedJob(tj, pods, nil, now, cfg)
}

// planQueuedJob is planJob for a job in a Kueue queue: its workers run only while Kueue admits it.
func planQueuedJob(tj *kubetrainv1alpha1.TrainingJob, pods []*corev1.Pod, queue *queueAdmission, now time.Time, cfg Config) plan {
	p := &planner{tj: tj, queue: queue, now: now, nowMeta: metav1.NewTime(now).Rfc3339Copy(), cfg: cfg, pods: pods}
	if queue != nil && queue.admitted {
		p.out.admission = queue
	}
	p.out.status = *tj.Status.DeepCopy()
	p.out.status.ObservedGeneration = tj.Generation
	p.current = map[int32]*corev1.Pod{}
	for _, pod := range pods {
		attempt, rank, ok := podAttemptAndRank(pod)
		switch {
		case !ok:
			continue
		case attempt == tj.Status.Attempt:
			p.current[rank] = pod
		case !podFinished(pod):
			p.activeOld = append(p.activeOld, pod)
		}
	}
	p.run()
	for i := range p.out.status.Conditions {
		p.out.status.Conditions[i].ObservedGeneration = tj.Generation
	}
	return p.out
}

func (p *planner) run() {
	st := &p.out.status
	p.noteCheckpoint()
	if finished(st.Phase) {
		p.keepFinished()
		return
	}
	// Workers that finished training finished it, whenever the manager gets to see it: success
	// comes before the deadline.
	if st.AttemptStartTime != nil && p.attemptSucceeded() {
		p.followAttempt()
		return
	}
	if left, ok := deadlineLeft(p.tj, p.now); ok {
		if left <= 0 {
			p.fail(kubetrainv1alpha1.ReasonDeadlineExceeded, fmt.Sprintf(
				"the job ran longer than spec.runPolicy.activeDeadlineSeconds (%ds)", *p.tj.Spec.RunPolicy.ActiveDeadlineSeconds))
			return
		}
		p.requeue(left)
	}
	if st.AttemptStartTime != nil && p.followAttempt() {
		return
	}
	if st.AttemptStartTime == nil {
		p.startAttempt()
	}
}

// attemptSucceeded says whether every worker of the current attempt succeeded.
func (p *planner) attemptSucceeded() bool {
	for rank := int32(0); rank < p.tj.Spec.Workers; rank++ {
		if pod := p.current[rank]; pod == nil || pod.Status.Phase != corev1.PodSucceeded {
			return false
		}
	}
	return true
}

// followAttempt looks at the current attempt's workers. It reports true when the job's fate for
// this pass is settled; false when a new attempt is to start.
func (p *planner) followAttempt() bool {
	st := &p.out.status
	var counts kubetrainv1alpha1.WorkerCounts
	var end *workerEnd
	for rank := int32(0); rank < p.tj.Spec.Workers; rank++ {
		pod := p.current[rank]
		var e *workerEnd
		switch {
		case pod == nil:
			v := vanishedPod(workerPodName(p.tj.Name, rank, st.Attempt))
			e = &v
		case pod.Status.Phase == corev1.PodSucceeded:
			counts.Succeeded++
		case pod.Status.Phase == corev1.PodFailed:
			counts.Failed++
			c := classifyFailedPod(pod)
			e = &c
		case pod.DeletionTimestamp != nil:
			// Being deleted by someone else (a drain, kubectl delete): the attempt is disrupted.
			// The next one waits until this worker has stopped: two trainers of one job must never
			// write checkpoints at once.
			d := deletedPod(pod.Name)
			e = &d
		case pod.Status.Phase == corev1.PodRunning:
			counts.Running++
		default:
			counts.Pending++
		}
		if e != nil && (end == nil || severity(e.class) > severity(end.class)) {
			end = e
		}
	}
	counts.Ready = fmt.Sprintf("%d/%d", counts.Running, p.tj.Spec.Workers)
	st.Workers = counts

	switch {
	case counts.Succeeded == p.tj.Spec.Workers:
		p.succeed()
		return true
	case p.held():
		// A suspension ends the attempt whatever its workers do while they stop (SIGTERM, a
		// deletion this pass or one whose status write was lost made): nothing is counted.
		p.suspend()
		return true
	case end != nil:
		return p.endAttempt(*end)
	case counts.Running+counts.Succeeded == p.tj.Spec.Workers:
		if end, ended := p.noProgress(); ended {
			return p.endAttempt(end)
		}
		if st.Phase != kubetrainv1alpha1.PhaseRunning {
			p.emit(corev1.EventTypeNormal, kubetrainv1alpha1.ReasonRunning, "Run",
				fmt.Sprintf("attempt %d: %d worker(s) running", st.Attempt, counts.Running))
		}
		p.setPhase(kubetrainv1alpha1.PhaseRunning, health{ready: true,
			reason: kubetrainv1alpha1.ReasonRunning, message: fmt.Sprintf("attempt %d: %d worker(s) running", st.Attempt, counts.Running)})
		return true
	default:
		reason, message, stalled, recheck := pendingReason(p.current, p.now, p.cfg.ImagePullStall)
		if recheck > 0 {
			p.requeue(recheck)
		}
		p.setPhase(kubetrainv1alpha1.PhasePending, health{stalled: stalled, reason: reason, message: message})
		return true
	}
}

// noProgress ends an attempt whose workers all run but whose trainer has not reported within the
// progress deadline, counted from when they all ran; otherwise it asks for a pass at the deadline.
func (p *planner) noProgress() (workerEnd, bool) {
	st := &p.out.status
	deadline, ok := progressDeadline(p.tj, p.cfg)
	if !ok || (st.Progress != nil && st.Progress.Attempt != nil && *st.Progress.Attempt == st.Attempt) {
		return workerEnd{}, false
	}
	since := p.now
	if ready := apimeta.FindStatusCondition(st.Conditions, kubetrainv1alpha1.ConditionReady); st.Phase == kubetrainv1alpha1.PhaseRunning &&
		ready != nil && ready.Status == metav1.ConditionTrue {
		since = ready.LastTransitionTime.Time
	}
	left := since.Add(deadline).Sub(p.now)
	if left > 0 {
		p.requeue(left)
		return workerEnd{}, false
	}
	// endAttempt stops the workers, as for any attempt that ends.
	return workerEnd{contract.ExitClassRetriable, kubetrainv1alpha1.ReasonNoProgress, fmt.Sprintf(
		"the trainer did not report progress within %v of its workers running (spec.runPolicy.progressDeadlineSeconds); "+
			"is spec.image a trainer that reports?", deadline)}, true
}

// progressDeadline is the job's progress deadline: its own, or the manager's for the bundled
// trainer; none for a custom image that sets none, or one set to 0.
func progressDeadline(tj *kubetrainv1alpha1.TrainingJob, cfg Config) (time.Duration, bool) {
	if s := tj.Spec.RunPolicy.ProgressDeadlineSeconds; s != nil {
		return time.Duration(*s) * time.Second, *s > 0
	}
	return cfg.ProgressDeadline, tj.Spec.Image == "" && cfg.ProgressDeadline > 0
}

// endAttempt applies the failure policy to an attempt a worker of which ended without success.
func (p *planner) endAttempt(end workerEnd) bool {
	st := &p.out.status
	switch end.class {
	case contract.ExitClassPermanent:
		p.fail(kubetrainv1alpha1.ReasonPermanentFailure, fmt.Sprintf("%s (%s: not retried)", end.message, end.reason))
		return true
	case contract.ExitClassDisruption:
		st.Disruptions++
		// An attempt that ran a while ends the streak: what disrupted it was not a loop.
		if p.now.Sub(st.AttemptStartTime.Time) >= disruptionStreakReset {
			st.DisruptionsInARow = 0
		}
		st.DisruptionsInARow++
		var wait time.Duration
		note := "restarting"
		if st.DisruptionsInARow > 1 {
			wait = backoff(st.DisruptionsInARow-1, p.cfg)
			note = fmt.Sprintf("%d in a row, restarting in %s", st.DisruptionsInARow, wait)
		}
		p.ended = fmt.Sprintf("was disrupted: %s (%s)", end.message, end.reason)
		p.emit(corev1.EventTypeWarning, kubetrainv1alpha1.ReasonWorkerDisrupted, "Restart",
			fmt.Sprintf("attempt %d disrupted (%s), %s: %s", st.Attempt, end.reason, note, end.message))
		p.nextAttempt(wait)
		return false
	default:
		st.Failures++
		limit := backoffLimit(p.tj)
		if st.Failures > limit {
			p.fail(kubetrainv1alpha1.ReasonBackoffLimit, fmt.Sprintf(
				"%d failed attempt(s), more than spec.runPolicy.backoffLimit (%d); last: %s", st.Failures, limit, end.message))
			return true
		}
		wait := backoff(st.Failures, p.cfg)
		p.ended = fmt.Sprintf("failed: %s (%s)", end.message, end.reason)
		p.emit(corev1.EventTypeWarning, kubetrainv1alpha1.ReasonWorkerFailed, "Restart",
			fmt.Sprintf("attempt %d failed (%s), retrying in %s: %s", st.Attempt, end.reason, wait, end.message))
		p.nextAttempt(wait)
		return false
	}
}

// nextAttempt ends the current attempt: its remaining workers are stopped and the next attempt
// starts after wait.
func (p *planner) nextAttempt(wait time.Duration) {
	st := &p.out.status
	for _, pod := range p.current {
		if podFinished(pod) {
			continue
		}
		// A worker already stopping is still active: the next attempt waits for it too.
		if pod.DeletionTimestamp == nil {
			p.out.deletePods = append(p.out.deletePods, pod)
		}
		p.activeOld = append(p.activeOld, pod)
	}
	p.current = nil
	st.Attempt++
	st.Restarts++
	st.AttemptStartTime = nil
	st.RestartAfter = nil
	if wait > 0 {
		t := metav1.NewTime(p.now.Add(wait)).Rfc3339Copy()
		st.RestartAfter = &t
	}
}

// startAttempt creates the current attempt's workers once nothing holds them back.
func (p *planner) startAttempt() {
	st := &p.out.status
	if p.held() {
		p.suspend()
		return
	}
	if st.RestartAfter != nil && p.now.Before(st.RestartAfter.Time) {
		p.requeue(st.RestartAfter.Sub(p.now))
		msg := fmt.Sprintf("attempt %d starts after %s", st.Attempt, st.RestartAfter.UTC().Format(time.RFC3339))
		if p.ended != "" {
			msg += "; attempt " + strconv.Itoa(int(st.Attempt-1)) + " " + p.ended
		} else if c := apimeta.FindStatusCondition(st.Conditions, kubetrainv1alpha1.ConditionReady); c != nil &&
			c.Reason == kubetrainv1alpha1.ReasonBackoff && strings.HasPrefix(c.Message, msg) {
			msg = c.Message // why the last attempt failed, as the pass that saw it said
		}
		p.setPhase(kubetrainv1alpha1.PhaseRestarting, health{reconciling: true, reason: kubetrainv1alpha1.ReasonBackoff, message: msg})
		return
	}
	if len(p.activeOld) > 0 {
		p.setPhase(kubetrainv1alpha1.PhaseRestarting, health{reconciling: true, reason: kubetrainv1alpha1.ReasonRestarting,
			message: fmt.Sprintf("attempt %d waits for %d pod(s) of earlier attempts to stop", st.Attempt, len(p.activeOld))})
		return
	}
	if st.Phase == kubetrainv1alpha1.PhaseSuspended {
		p.resume()
	}
	p.recordResumption()
	p.out.createWorkers = true
	st.AttemptStartTime = &p.nowMeta
	if st.StartTime == nil {
		st.StartTime = &p.nowMeta
	}
	st.RestartAfter = nil
	st.Workers = kubetrainv1alpha1.WorkerCounts{Pending: p.tj.Spec.Workers, Ready: fmt.Sprintf("0/%d", p.tj.Spec.Workers)}
	p.emit(corev1.EventTypeNormal, kubetrainv1alpha1.ReasonPodsCreated, "Create",
		fmt.Sprintf("attempt %d: created %d worker pod(s)", st.Attempt, p.tj.Spec.Workers))
	// The same status as the next pass computes for a pod that waits to start, so that pass has
	// nothing to write: a new job costs one status write.
	reason, message, _, _ := pendingReason(nil, p.now, 0)
	p.setPhase(kubetrainv1alpha1.PhasePending, health{reason: reason, message: message})
}

// held says whether the workers must not run: the job is suspended, or waits in a Kueue queue (a
// job Kueue has not admitted is suspended by the KueueReconciler too, but this pass may have read
// it before).
func (p *planner) held() bool {
	return p.tj.Spec.RunPolicy.Suspend || (p.queue != nil && !p.queue.admitted)
}

func (p *planner) succeed() {
	st := &p.out.status
	st.CompletionTime = &p.nowMeta
	result := trainerResult(p.current[0])
	st.ModelURI = finalModel(p.tj, result)
	reason, msg := kubetrainv1alpha1.ReasonSucceeded, fmt.Sprintf("training finished in attempt %d", st.Attempt)
	if result.StopReason == contract.StopTargetReached && result.Last != nil {
		reason = kubetrainv1alpha1.ReasonTargetReached
		msg = fmt.Sprintf("test accuracy %.4f reached the target %g after epoch %d of %d", result.Last.TestAccuracy,
			ptr.Deref(p.tj.Spec.Hyperparameters.TargetTestAccuracy, 0), result.Last.Epoch, result.Last.Epochs)
	}
	if st.ModelURI != "" {
		msg += "; model: " + contract.ShowURI(st.ModelURI)
	}
	setCondition(st, p.tj.Generation, p.nowMeta, kubetrainv1alpha1.ConditionSucceeded, metav1.ConditionTrue, reason, msg)
	p.setPhase(kubetrainv1alpha1.PhaseSucceeded, health{ready: true, reason: kubetrainv1alpha1.ReasonSucceeded, message: msg})
	p.emit(corev1.EventTypeNormal, kubetrainv1alpha1.ReasonSucceeded, "Complete", msg)
	p.keepFinished()
}

// fail ends the job: its active pods are stopped and it never starts pods again.
func (p *planner) fail(reason, message string) {
	st := &p.out.status
	st.CompletionTime = &p.nowMeta
	setCondition(st, p.tj.Generation, p.nowMeta, kubetrainv1alpha1.ConditionFailed, metav1.ConditionTrue, reason, message)
	p.setPhase(kubetrainv1alpha1.PhaseFailed, health{stalled: true, reason: reason, message: message})
	p.emit(corev1.EventTypeWarning, reason, "Fail", message)
	p.keepFinished()
}

// stopActivePods stops every pod of the job that still runs and is not already stopping.
func (p *planner) stopActivePods() {
	for _, pod := range p.current {
		if !podFinished(pod) && pod.DeletionTimestamp == nil {
			p.out.deletePods = append(p.out.deletePods, pod)
		}
	}
	for _, pod := range p.activeOld {
		if pod.DeletionTimestamp == nil {
			p.out.deletePods = append(p.out.deletePods, pod)
		}
	}
}

// keepFinished keeps a finished job finished: whatever pods still run are stopped, none is created,
// and the job is deleted when its TTL passes.
func (p *planner) keepFinished() {
	p.stopActivePods()
	p.out.requeueAfter = 0
	tj := p.tj.DeepCopy()
	tj.Status = p.out.status
	if left, ok := ttlLeft(tj, p.now); ok {
		if left > 0 {
			p.requeue(left)
			return
		}
		if tj.Spec.RunPolicy.TTLAction != kubetrainv1alpha1.TTLDeletePods {
			p.out.deleteJob = true
			return
		}
		// The job stays, as its author keeps it (in Git, say); its finished pods go.
		stopping := map[string]bool{}
		for _, pod := range p.out.deletePods {
			stopping[pod.Name] = true
		}
		for _, pod := range p.pods {
			if pod.DeletionTimestamp == nil && !stopping[pod.Name] {
				p.out.deletePods = append(p.out.deletePods, pod)
			}
		}
		if n := len(p.out.deletePods); n > 0 {
			p.emit(corev1.EventTypeNormal, kubetrainv1alpha1.ReasonTTLExpired, "Delete", fmt.Sprintf(
				"spec.runPolicy.ttlSecondsAfterFinished passed: deleted %d pod(s), kept the job (ttlAction DeletePods)", n))
		}
	}
}

func (p *planner) setPhase(phase kubetrainv1alpha1.Phase, h health) {
	was := apimeta.FindStatusCondition(p.out.status.Conditions, kubetrainv1alpha1.ConditionStalled)
	p.out.status.Phase = phase
	setHealth(&p.out.status, p.tj.Generation, p.nowMeta, h)
	// A job that comes to need its author says so once, as it happens (a failure says so itself).
	if h.stalled && !finished(phase) && (was == nil || was.Status != metav1.ConditionTrue || was.Reason != h.reason) {
		p.emit(corev1.EventTypeWarning, h.reason, "Stall", h.message)
	}
}

func (p *planner) emit(eventType, reason, action, note string) {
	p.out.events = append(p.out.events, event{eventType, reason, action, note})
}

// requeue asks for a pass after d at the latest.
func (p *planner) requeue(d time.Duration) {
	if d <= 0 {
		d = time.Second
	}
	if p.out.requeueAfter == 0 || d < p.out.requeueAfter {
		p.out.requeueAfter = d
	}
}

// pendingReason says why workers are not running yet, from their pods' status: the scheduler's
// message for an unschedulable pod (e.g. too few GPUs), the kubelet's for a container that cannot
// start. stalled is true when only a change by the user can help (e.g. a missing Secret, an image
// that has kept failing to pull for imagePullStall since its pod was scheduled); recheck, when not
// zero, is when a pull that fails now will have failed that long.
func pendingReason(pods map[int32]*corev1.Pod, now time.Time, imagePullStall time.Duration) (reason, message string, stalled bool, recheck time.Duration) {
	for rank := int32(0); rank < int32(len(pods)); rank++ {
		pod := pods[rank]
		if pod == nil {
			continue
		}
		for _, cs := range pod.Status.ContainerStatuses {
			w := cs.State.Waiting
			if w == nil {
				continue
			}
			switch w.Reason {
			case "CreateContainerConfigError", "CreateContainerError":
				return kubetrainv1alpha1.ReasonContainerConfig, podMessage(pod, w.Message), true, 0
			case "InvalidImageName":
				return kubetrainv1alpha1.ReasonImagePull, podMessage(pod, w.Message), true, 0
			case "ErrImagePull", "ImagePullBackOff":
				message := podMessage(pod, w.Reason+": "+w.Message)
				scheduled := scheduledAt(pod)
				if scheduled.IsZero() {
					return kubetrainv1alpha1.ReasonImagePull, message, false, 0
				}
				if left := scheduled.Add(imagePullStall).Sub(now); left > 0 {
					return kubetrainv1alpha1.ReasonImagePull, message, false, left
				}
				// The same words at every pass: a message that changed with the time would be a status
				// write, and so another pass, every time.
				return kubetrainv1alpha1.ReasonImagePull, fmt.Sprintf("%s (failing for more than %v since the pod was scheduled)",
					message, imagePullStall), true, 0
			}
		}
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				return kubetrainv1alpha1.ReasonUnschedulable, podMessage(pod, c.Message), false, 0
			}
		}
	}
	return kubetrainv1alpha1.ReasonPodsPending, "waiting for the workers to start", false, 0
}

// scheduledAt is when the scheduler bound the pod to a node, or zero.
func scheduledAt(pod *corev1.Pod) time.Time {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}

// disruptionStreakReset is how long an attempt must have run for its disruption to restart the job
// at once, as the first of a new streak (the kubelet resets a crash loop's backoff likewise).
const disruptionStreakReset = 10 * time.Minute

func backoffLimit(tj *kubetrainv1alpha1.TrainingJob) int32 {
	if tj.Spec.RunPolicy.BackoffLimit == nil {
		return 3
	}
	return *tj.Spec.RunPolicy.BackoffLimit
}

// severity orders how an attempt ended when its workers ended differently: a permanent failure
// outweighs a disruption, which outweighs a retriable failure. When one worker of several is
// evicted or deleted, the others lose their peer and exit retriably in its wake: the attempt was
// disrupted, and is not counted as failed.
func severity(c contract.ExitClass) int {
	switch c {
	case contract.ExitClassPermanent:
		return 3
	case contract.ExitClassDisruption:
		return 2
	case contract.ExitClassRetriable:
		return 1
	default:
		return 0
	}
}

func podFinished(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// podAttemptAndRank reads the attempt and rank labels the controller put on a worker pod.
func podAttemptAndRank(pod *corev1.Pod) (attempt, rank int32, ok bool) {
	a, errA := strconv.ParseInt(pod.Labels[kubetrainv1alpha1.LabelAttempt], 10, 32)
	r, errR := strconv.ParseInt(pod.Labels[kubetrainv1alpha1.LabelRank], 10, 32)
	return int32(a), int32(r), errA == nil && errR == nil
}
