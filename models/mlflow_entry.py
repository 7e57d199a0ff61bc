"""MLflow models-from-code entry: logged as the pyfunc's code, so no Python object is pickled.

MLflow executes this file when the model is loaded; the model's code_paths (models/ and config/)
put what it imports on the path, so it loads without lapse installed.
"""

from mlflow.models import set_model

from models.pyfunc import DropoutRiskModel

set_model(DropoutRiskModel())
