// Command evaluate decides measurements the way the Argo Rollouts controller does.
//
// stdin: a JSON list of cases {"success": cond, "failure": cond, "provider":
// "prometheus"|"cloudwatch", "values": [...]}; stdout: one phase per case
// (Successful, Failed, Inconclusive or Error).
//
// The conditions run in the real expression engine, github.com/antonmedv/expr (Debian
// golang-github-antonmedv-expr-dev 1.8.9; argo-rollouts v1.9.0 pins v1.15.5: the
// operators used here, len, &&, comparisons, all/any with a closure, behave the same).
// EvaluateResult and EvalCondition below are argo-rollouts v1.9.0
// utils/evaluate/evaluate.go (the env: result, isNaN, isInf), trimmed to what the
// generated templates use. The result shapes are those the providers hand it:
// prometheus, []float64 of the vector's samples (metricproviders/prometheus/prometheus.go
// processResponse); cloudwatch, the MetricDataResults, each with its Values
// (metricproviders/cloudwatch/cloudwatch.go Run).
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"

	"github.com/antonmedv/expr"
)

type metricDataResult struct {
	Id     string
	Values []float64
}

type testCase struct {
	Success  string   `json:"success"`
	Failure  string   `json:"failure"`
	Provider string   `json:"provider"`
	Values   []string `json:"values"` // numbers as text: "NaN" is not JSON
}

func isInf(f float64) bool { return math.IsInf(f, 0) }

func evalCondition(result any, condition string) (bool, error) {
	env := map[string]any{"result": result, "isNaN": math.IsNaN, "isInf": isInf}
	program, err := expr.Compile(condition, expr.Env(env))
	if err != nil {
		return false, err
	}
	output, err := expr.Run(program, env)
	if err != nil {
		return false, err
	}
	b, ok := output.(bool)
	if !ok {
		return false, fmt.Errorf("expected bool, but got %T", output)
	}
	return b, nil
}

func evaluateResult(result any, success, failure string) string {
	ok, bad := false, false
	var err error
	if success != "" {
		if ok, err = evalCondition(result, success); err != nil {
			return "Error"
		}
	}
	if failure != "" {
		if bad, err = evalCondition(result, failure); err != nil {
			return "Error"
		}
	}
	switch {
	case success == "" && failure == "":
		return "Successful"
	case success != "" && failure == "":
		bad = !ok
	case success == "" && failure != "":
		ok = !bad
	}
	if bad {
		return "Failed"
	}
	if !ok {
		return "Inconclusive"
	}
	return "Successful"
}

func main() {
	var cases []testCase
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for _, c := range cases {
		values := make([]float64, 0, len(c.Values))
		for _, v := range c.Values {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil && v != "NaN" {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			if v == "NaN" {
				f = math.NaN()
			}
			values = append(values, f)
		}
		var result any = values
		if c.Provider == "cloudwatch" {
			result = []metricDataResult{{Id: "result", Values: values}}
		}
		fmt.Println(evaluateResult(result, c.Success, c.Failure))
	}
}
