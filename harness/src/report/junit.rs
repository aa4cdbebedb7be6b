//! `junit.xml`: one test suite per run, one test case per check (lost, unexpected, duplicated
//! where checked, each fault's limits), with the measured value and the limit in the failure
//! message; the run id, seed, verdict and images as properties. What GitLab's test report and
//! the common GitHub JUnit actions read: classname, name, failure, skipped.

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::{Reporter, RunEvent, RunResult};
use crate::check::verdict::Outcome;

/// The JUnit XML of a result.
pub fn render(r: &RunResult) -> Result<String, quick_junit::SerializeError> {
    let mut suite = TestSuite::new(r.scenario.as_str());
    suite.add_property(Property::new("run_id", r.run_id.as_str()));
    suite.add_property(Property::new("seed", r.seed.to_string()));
    suite.add_property(Property::new(
        "verdict",
        format!("{:?}", r.verdict).to_lowercase(),
    ));
    suite.add_property(Property::new("family", r.cluster.family.as_str()));
    for image in &r.cluster.images {
        suite.add_property(Property::new(
            format!("image {}", image.requested),
            format!("{} ({})", image.used, image.source),
        ));
    }
    let classname = format!("faultline.{}", r.scenario);
    for case in &r.checks.cases {
        let status = match case.outcome {
            Outcome::Held => TestCaseStatus::success(),
            Outcome::Failed => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(case.message.as_str());
                s
            }
            // Not decided: the run could not tell (drain cut short, fault never applied). A
            // skipped case is what CI shows as "not run", never as a pass.
            Outcome::Undecided => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(case.message.as_str());
                s
            }
        };
        let mut test = TestCase::new(case.name.as_str(), status);
        test.set_classname(classname.as_str());
        suite.add_test_case(test);
    }
    let mut report = Report::new("faultline");
    report.add_test_suite(suite);
    report.to_string()
}

/// Writes `junit.xml` into the run directory.
pub struct JunitReport;

impl Reporter for JunitReport {
    fn on(&mut self, event: &RunEvent) -> std::io::Result<()> {
        let RunEvent::Finished { result, out_dir } = event else {
            return Ok(());
        };
        let path = out_dir.join("junit.xml");
        let xml = render(result).map_err(std::io::Error::other)?;
        std::fs::write(&path, xml)
            .map_err(|e| std::io::Error::new(e.kind(), format!("write {}: {e}", path.display())))
    }
}
