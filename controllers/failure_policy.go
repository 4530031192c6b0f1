package controllers

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubetrain/kubetrain/internal/contract"
)

// The rule for "what happens when a worker dies": a worker that ends is classified by how it ended,
// and the class decides whether the job fails now, retries after a backoff that counts against the
// backoff limit, or retries at once without counting (a disruption).

// workerEnd is how a worker pod ended.
type workerEnd struct {
	class   contract.ExitClass
	reason  string
	message string
}

// classifyFailedPod says why a pod in phase Failed ended. Eviction for the node's sake, preemption
// and a node shutdown are disruptions whatever the exit code: the kubelet and the API server mark
// them with the DisruptionTarget condition, older kubelets with their own reasons. What the worker
// brought on itself is not: an eviction for exceeding its own limits (a full scratch volume, which
// the kubelet marks Evicted without that condition), or a SIGTERM that nobody recorded sending
// (exit 143 from a pod that is neither being deleted nor marked disrupted). Those count as failures,
// so a worker that keeps causing them ends at the backoff limit instead of restarting for ever.
// Otherwise the trainer's exit code decides.
func classifyFailedPod(pod *corev1.Pod) workerEnd {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue {
			return workerEnd{contract.ExitClassDisruption, c.Reason, podMessage(pod, c.Message)}
		}
	}
	switch pod.Status.Reason {
	case "Evicted":
		if nodePressure(pod.Status.Message) {
			return workerEnd{contract.ExitClassDisruption, "Evicted", podMessage(pod, pod.Status.Message)}
		}
		return workerEnd{contract.ExitClassRetriable, "Evicted", podMessage(pod, strings.TrimSpace(pod.Status.Message)+
			" (evicted for its own usage: counted as a failure)")}
	case nodeShutdownReason:
		return workerEnd{contract.ExitClassDisruption, nodeShutdownReason, podMessage(pod, pod.Status.Message)}
	}
	term := trainerTermination(pod)
	if term == nil {
		// Failed without a container result: rejected at admission by the kubelet (e.g.
		// OutOfcpu, NodeAffinity). Another attempt may land elsewhere.
		return workerEnd{contract.ExitClassRetriable, nonEmpty(pod.Status.Reason, "PodFailed"),
			podMessage(pod, pod.Status.Message)}
	}
	end := workerEnd{
		class:   contract.ClassifyExit(term.ExitCode),
		reason:  contract.ExitReason(term.ExitCode),
		message: podMessage(pod, fmt.Sprintf("exit code %d: %s", term.ExitCode, terminationText(term.Message))),
	}
	if end.class == contract.ExitClassDisruption && pod.DeletionTimestamp == nil {
		end.class = contract.ExitClassRetriable
		end.message += " (terminated, but the pod was neither deleted nor marked disrupted: counted as a failure)"
	}
	return end
}

// nodePressure says whether a kubelet eviction message is one of a node short of a resource, as
// opposed to a pod over its own limits.
func nodePressure(msg string) bool {
	return strings.HasPrefix(msg, "The node was low on resource") || strings.HasPrefix(msg, "The node had condition")
}

// nodeShutdownReason is the pod reason older kubelets give the pods they stop for a node shutdown.
const nodeShutdownReason = "Terminated"

// vanishedPod is the end of a worker whose pod is gone before it finished: deleted by a user or
// by a node's removal. Neither says anything about the training, so it is a disruption.
func vanishedPod(name string) workerEnd {
	return workerEnd{contract.ExitClassDisruption, "PodDeleted", fmt.Sprintf("pod %s was deleted before it finished", name)}
}

// deletedPod is the end of a worker whose pod is being deleted (by someone else) before it
// finished: a disruption too, seen before the pod is gone.
func deletedPod(name string) workerEnd {
	return workerEnd{contract.ExitClassDisruption, "PodDeleted", fmt.Sprintf("pod %s is being deleted before it finished", name)}
}

// backoff is the wait before the attempt that follows the n-th failure (n >= 1): base, 2*base,
// 4*base, ... up to max.
func backoff(n int32, cfg Config) time.Duration {
	d := cfg.BackoffBase
	for i := int32(1); i < n && d < cfg.BackoffMax; i++ {
		d *= 2
	}
	return min(d, cfg.BackoffMax)
}

func trainerTermination(pod *corev1.Pod) *corev1.ContainerStateTerminated {
	for i := range pod.Status.ContainerStatuses {
		cs := &pod.Status.ContainerStatuses[i]
		if cs.Name == TrainerContainerName && cs.State.Terminated != nil {
			return cs.State.Terminated
		}
	}
	return nil
}

// terminationText is the readable part of a termination message: the trainer writes a
// contract.Result as JSON; a custom image may write anything.
func terminationText(msg string) string {
	var r contract.Result
	if err := json.Unmarshal([]byte(msg), &r); err == nil && r.Outcome != "" {
		if r.Message != "" {
			return r.Message
		}
		return r.Outcome
	}
	const max = 512
	if len(msg) > max {
		msg = msg[:max] + "..."
	}
	return msg
}

func podMessage(pod *corev1.Pod, msg string) string {
	return fmt.Sprintf("pod %s: %s", pod.Name, msg)
}

func nonEmpty(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}
